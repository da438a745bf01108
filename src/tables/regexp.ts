// regexp: and pcre: tables (regexp_table(5), pcre_table(5)) implemented with JavaScript regular
// expressions: `/pattern/flags result`, `!/pattern/flags result`, `if /pattern/flags` … `endif`
// (nesting allowed), `$1`/`${1}` substitution and `$$` in results. Rules are tried in file order;
// the first match wins. Keys are not case-folded; matching is case-insensitive unless the `i` flag
// toggles that off, as in Postfix. Trusts nothing in the file: every bad rule is an error naming
// the file and line.

import type { LookupResult } from './types.js';
import { splitLogicalLines } from './source.js';

interface Pattern { re: RegExp; negate: boolean }
interface MatchRule { kind: 'match'; pat: Pattern; result: Array<string | number> }
interface IfBlock { kind: 'if'; pat: Pattern; body: Node[] }
type Node = MatchRule | IfBlock;

/** Flags each dialect accepts (toggles relative to the Postfix defaults). */
const DIALECTS = {
  // regexp_table(5): i (default on), x (extended, default on), m (default off).
  regexp: 'ixm',
  // pcre_table(5): i (default on), m, s, x (default off), A (anchored), E (dollar end only).
  pcre: 'imsxAE',
} as const;

export type RegexpDialect = keyof typeof DIALECTS;

/** Strip pcre extended-mode white space and comments (outside character classes). */
function stripExtended(src: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') { out += c + (src[i + 1] ?? ''); i++; continue; }
    if (inClass) { if (c === ']') inClass = false; out += c; continue; }
    if (c === '[') { inClass = true; out += c; continue; }
    if (c === ' ' || c === '\t' || c === '\n') continue;
    if (c === '#') { while (i < src.length && src[i] !== '\n') i++; continue; }
    out += c;
  }
  return out;
}

export class RegexpMatcher {
  private constructor(private readonly nodes: Node[]) {}

  static parse(dialect: RegexpDialect, where: string, data: string): RegexpMatcher {
    const root: Node[] = [];
    const stack: Array<{ body: Node[]; line: number }> = [];
    let body = root;
    for (const { line, text } of splitLogicalLines(data)) {
      const fail = (why: string): never => {
        throw new Error(`${where}, line ${line}: ${why}`);
      };
      const head = /^(if|endif)(?=\s|$)/i.exec(text);
      if (head && head[1].toLowerCase() === 'endif') {
        const extra = text.slice(5).trim();
        if (extra) fail(`ignoring extra text after ENDIF: "${extra}"`);
        if (!stack.length) fail('ENDIF without matching IF');
        stack.pop();
        body = stack.length ? stack[stack.length - 1].body : root;
        continue;
      }
      const isIf = head !== null;
      const rest = isIf ? text.slice(2).trim() : text;
      const { pat, after } = parsePattern(dialect, rest, fail);
      if (isIf) {
        if (after) fail(`ignoring extra text after IF statement: "${after}"`);
        const block: IfBlock = { kind: 'if', pat, body: [] };
        body.push(block);
        stack.push({ body: block.body, line });
        body = block.body;
        continue;
      }
      const result = parseResult(after, pat, fail);
      body.push({ kind: 'match', pat, result });
    }
    if (stack.length) throw new Error(`${where}, line ${stack[stack.length - 1].line}: IF has no matching ENDIF`);
    return new RegexpMatcher(root);
  }

  lookup(key: string): LookupResult {
    return evalNodes(this.nodes, key);
  }
}

function parsePattern(dialect: RegexpDialect, text: string, fail: (why: string) => never): { pat: Pattern; after: string } {
  let p = 0;
  let negate = false;
  if (text[p] === '!') {
    negate = true;
    p++;
    while (text[p] === ' ' || text[p] === '\t') p++;
  }
  const delim = text[p];
  if (delim === undefined || /[\sA-Za-z0-9\\]/.test(delim)) fail(`regexp pattern must start with a delimiter such as "/": "${text}"`);
  let q = p + 1;
  while (q < text.length && text[q] !== delim) {
    if (text[q] === '\\' && q + 1 < text.length) q++;
    q++;
  }
  if (q >= text.length) fail(`no closing regexp delimiter "${delim}": "${text}"`);
  let source = text.slice(p + 1, q);
  q++;
  // Postfix defaults: case-insensitive; regexp tables use extended POSIX syntax (JavaScript's own).
  let ignoreCase = true, multiline = false, dotAll = false, extended = dialect === 'regexp', anchored = false;
  const allowed: string = DIALECTS[dialect];
  while (q < text.length && !/\s/.test(text[q])) {
    const f = text[q++];
    if (!allowed.includes(f)) fail(`unknown regexp option "${f}"`);
    switch (f) {
      case 'i': ignoreCase = !ignoreCase; break;
      case 'm': multiline = !multiline; break;
      case 's': dotAll = !dotAll; break;
      case 'x': extended = !extended; break;
      case 'A': anchored = true; break;
      case 'E': break; // JavaScript's `$` already matches only at the very end without the m flag
    }
  }
  if (dialect === 'pcre' && extended) source = stripExtended(source);
  if (anchored) source = `^(?:${source})`;
  let re: RegExp;
  try {
    re = new RegExp(source, (ignoreCase ? 'i' : '') + (multiline ? 'm' : '') + (dotAll ? 's' : ''));
  } catch (err) {
    return fail(`bad regular expression "${text.slice(p, q)}": ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`);
  }
  return { pat: { re, negate }, after: text.slice(q).trim() };
}

/** Split a result into literal parts and group numbers; checks indexes against the pattern. */
function parseResult(text: string, pat: Pattern, fail: (why: string) => never): Array<string | number> {
  const groups = new RegExp(`(?:${pat.re.source})|`).exec('')!.length - 1;
  const parts: Array<string | number> = [];
  let lit = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '$') { lit += c; continue; }
    const n = text[i + 1];
    if (n === '$') { lit += '$'; i++; continue; }
    let m: RegExpExecArray | null;
    if ((m = /^\$(\d+)|^\$\{(\d+)\}|^\$\((\d+)\)/.exec(text.slice(i))) !== null) {
      const idx = Number(m[1] ?? m[2] ?? m[3]);
      if (pat.negate) fail(`$number found in negative match replacement text: "${text}"`);
      if (idx < 1 || idx > groups) fail(`out-of-range replacement index "${idx}"`);
      if (lit) parts.push(lit);
      lit = '';
      parts.push(idx);
      i += m[0].length - 1;
      continue;
    }
    lit += c;
  }
  if (lit || parts.length === 0) parts.push(lit);
  return parts;
}

function evalNodes(nodes: Node[], key: string): LookupResult {
  for (let n = 0; n < nodes.length; n++) {
    const node = nodes[n];
    if (node.pat.negate) {
      if (node.pat.re.test(key)) continue;
      if (node.kind === 'if') {
        const r = evalNodes(node.body, key);
        if (r !== undefined) return r;
        continue;
      }
      return node.result.join('');
    }
    const m = node.pat.re.exec(key);
    if (!m) continue;
    if (node.kind === 'if') {
      const r = evalNodes(node.body, key);
      if (r !== undefined) return r;
      continue;
    }
    if (node.result.length === 1 && typeof node.result[0] === 'string') return node.result[0];
    let out = '';
    for (const part of node.result) out += typeof part === 'number' ? (m[part] ?? '') : part;
    return out;
  }
  return undefined;
}
