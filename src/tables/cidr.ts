// cidr: tables (cidr_table(5)): `pattern result`, `!pattern result`, `if pattern` … `endif`,
// IPv4 and IPv6, first match in file order wins. Lookups do not scan: each run of plain rules is
// indexed by prefix length (one hash map per length, value = the earliest rule number), so a lookup
// costs one map probe per distinct prefix length while still returning the first matching rule.
// Negated rules and if-blocks are evaluated in order between the indexed runs. Trusts nothing in
// the file: every bad pattern is an error naming the file and line.

import { isIP } from 'node:net';
import type { LookupResult } from './types.js';
import { splitLogicalLines, type SourceLine } from './source.js';

interface Net {
  v6: boolean;
  prefix: number;
  /** IPv4: network number (unsigned). IPv6: 32 lowercase hex digits. */
  v4: number;
  hex: string;
}

interface Rule { kind: 'rule'; net: Net; negate: boolean; result: string; index: number }
interface Block { kind: 'if'; net: Net; negate: boolean; body: Segment[] }
interface IndexedRun {
  kind: 'run';
  /** Prefix lengths present, and per length the map network → {index, result} (earliest rule kept). */
  v4: Array<[number, Map<number, Rule>]>;
  v6: Array<[number, Map<string, Rule>]>;
}
type Segment = IndexedRun | Rule | Block;

/** Parsed address: IPv4 as unsigned number, IPv6 as 32 hex digits. undefined if not an address. */
export interface ParsedAddr { v6: boolean; v4: number; hex: string }

/**
 * Parse an IPv4 dotted quad. An octet with a leading zero is octal, as inet_aton and cidr_table(5)
 * say; `08` is therefore invalid.
 */
export function parseV4(s: string): number | undefined {
  let n = 0;
  let parts = 0;
  let i = 0;
  const len = s.length;
  while (i < len) {
    let j = i;
    while (j < len && s.charCodeAt(j) !== 46) j++;
    if (j === i || j - i > 4) return undefined;
    let v = 0;
    const octal = j - i > 1 && s.charCodeAt(i) === 48;
    for (let k = i; k < j; k++) {
      const d = s.charCodeAt(k) - 48;
      if (d < 0 || d > 9 || (octal && d > 7)) return undefined;
      v = v * (octal ? 8 : 10) + d;
    }
    if (v > 255) return undefined;
    n = n * 256 + v;
    parts++;
    i = j + 1;
    if (j === len) break;
    if (i === len) return undefined; // trailing dot
  }
  return parts === 4 ? n : undefined;
}

/** Expand an IPv6 address (with optional embedded IPv4 tail) to 32 hex digits. */
export function parseV6(s: string): string | undefined {
  if (s.indexOf('%') >= 0 || isIP(s) !== 6) return undefined;
  let str = s;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) > 0) {
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    str = s.slice(0, lastColon + 1) + Math.floor(v4 / 65536).toString(16) + ':' + (v4 % 65536).toString(16);
  }
  let groups: string[];
  const dbl = str.indexOf('::');
  if (dbl >= 0) {
    const head = dbl > 0 ? str.slice(0, dbl).split(':') : [];
    const tail = dbl + 2 < str.length ? str.slice(dbl + 2).split(':') : [];
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return undefined;
    groups = [...head, ...new Array<string>(fill).fill('0'), ...tail];
  } else groups = str.split(':');
  if (groups.length !== 8) return undefined;
  let hex = '';
  for (const g of groups) hex += g.toLowerCase().padStart(4, '0');
  return hex.length === 32 ? hex : undefined;
}

export function parseAddr(key: string): ParsedAddr | undefined {
  if (key.indexOf(':') >= 0) {
    const hex = parseV6(key);
    return hex === undefined ? undefined : { v6: true, v4: 0, hex };
  }
  const v4 = parseV4(key);
  return v4 === undefined ? undefined : { v6: false, v4, hex: '' };
}

function v4Key(addr: number, prefix: number): number {
  return prefix === 0 ? 0 : Math.floor(addr / 2 ** (32 - prefix));
}

const NIBBLE_MASK = [0, 8, 12, 14];
function v6Key(hex: string, prefix: number): string {
  const full = prefix >> 2;
  const rem = prefix & 3;
  if (rem === 0) return hex.slice(0, full);
  return hex.slice(0, full) + (parseInt(hex[full], 16) & NIBBLE_MASK[rem]).toString(16);
}

function netMatches(net: Net, a: ParsedAddr): boolean {
  if (net.v6 !== a.v6) return false;
  return net.v6 ? v6Key(a.hex, net.prefix) === v6Key(net.hex, net.prefix) : v4Key(a.v4, net.prefix) === v4Key(net.v4, net.prefix);
}

/** Parse a cidr pattern; returns the network or throws the Postfix reason text. */
export function parseNet(pattern: string): Net {
  let p = pattern;
  let maskPart: string | undefined;
  if (p.startsWith('[')) {
    const close = p.indexOf(']');
    if (close < 0) throw new Error(`missing ']' character after "${p}"`);
    const after = p.slice(close + 1);
    if (after !== '' && !after.startsWith('/')) throw new Error(`garbage after "${p.slice(0, close + 1)}"`);
    maskPart = after ? after.slice(1) : undefined;
    p = p.slice(1, close);
    const slash = p.indexOf('/');
    if (slash >= 0) {
      if (maskPart !== undefined) throw new Error(`bad net/mask pattern: "${pattern}"`);
      maskPart = p.slice(slash + 1);
      p = p.slice(0, slash);
    }
  } else {
    const slash = p.indexOf('/');
    if (slash >= 0) {
      maskPart = p.slice(slash + 1);
      p = p.slice(0, slash);
    }
  }
  const v6 = p.indexOf(':') >= 0;
  const bits = v6 ? 128 : 32;
  const a = parseAddr(p);
  if (maskPart === undefined) {
    if (!a) throw new Error(`bad address pattern: "${p}"`);
    return { v6, prefix: bits, v4: a.v4, hex: a.hex };
  }
  if (!/^[0-9]+$/.test(maskPart) || Number(maskPart) > bits || !a) throw new Error(`bad net/mask pattern: "${p}/${maskPart}"`);
  const prefix = Number(maskPart);
  // Sanity check as Postfix does: all host address bits must be zero.
  if (v6) {
    const k = v6Key(a.hex, prefix);
    const net = k.padEnd(32, '0');
    if (net !== a.hex) throw new Error(`non-null host address bits in "${p}/${maskPart}", perhaps you should use "${formatV6(net)}/${prefix}" instead`);
  } else {
    const net = prefix === 0 ? 0 : v4Key(a.v4, prefix) * 2 ** (32 - prefix);
    if (net !== a.v4) throw new Error(`non-null host address bits in "${p}/${maskPart}", perhaps you should use "${formatV4(net)}/${prefix}" instead`);
  }
  return { v6, prefix, v4: a.v4, hex: a.hex };
}

function formatV4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
function formatV6(hex: string): string {
  const groups: string[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(parseInt(hex.slice(i, i + 4), 16).toString(16));
  // compress the longest run of zero groups (RFC 5952)
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return groups.slice(0, best).join(':') + '::' + groups.slice(best + bestLen).join(':');
}

export class CidrMatcher {
  private constructor(private readonly segments: Segment[]) {}

  /** Build from source text; `where` is e.g. `cidr map /etc/x` for error messages. */
  static parse(where: string, data: string): CidrMatcher {
    return CidrMatcher.fromLines(where, splitLogicalLines(data));
  }

  static fromLines(where: string, lines: SourceLine[]): CidrMatcher {
    const root: Segment[] = [];
    const stack: Array<{ body: Segment[]; line: number }> = [];
    let body = root;
    let index = 0;
    let run: IndexedRun | undefined;
    const fail = (line: number, why: string): never => {
      throw new Error(`${where}, line ${line}: ${why}`);
    };
    for (const { line, text } of lines) {
      // Always matches: the text may start with (or be only) white space other than space/tab,
      // e.g. a stray \r, and `.` would stop at \r or U+2028.
      const m = /^\s*(\S*)(?:\s+([\s\S]*))?$/.exec(text)!;
      const word = m[1];
      const rest = (m[2] ?? '').trim();
      const lower = word.toLowerCase();
      if (lower === 'endif') {
        if (rest) fail(line, `ignoring text after ENDIF: "${rest}"`);
        const top = stack.pop();
        if (!top) fail(line, 'ENDIF without matching IF');
        body = stack.length ? stack[stack.length - 1].body : root;
        run = undefined;
        continue;
      }
      if (lower === 'if') {
        if (!rest) fail(line, 'no address pattern');
        if (/\s/.test(rest)) fail(line, `ignoring text after IF pattern: "${rest.replace(/^\S+\s+/, '')}"`);
        const negate = rest.startsWith('!');
        const net = parseOr(fail, line, negate ? rest.slice(1) : rest);
        const block: Block = { kind: 'if', net, negate, body: [] };
        body.push(block);
        stack.push({ body: block.body, line });
        body = block.body;
        run = undefined;
        continue;
      }
      if (!rest) fail(line, `no lookup result for pattern "${word}"`);
      const negate = word.startsWith('!');
      const net = parseOr(fail, line, negate ? word.slice(1) : word);
      const rule: Rule = { kind: 'rule', net, negate, result: rest, index: index++ };
      if (negate) {
        body.push(rule);
        run = undefined;
        continue;
      }
      if (!run) {
        run = { kind: 'run', v4: [], v6: [] };
        body.push(run);
      }
      addToRun(run, rule);
    }
    if (stack.length) fail(stack[stack.length - 1].line, 'IF has no matching ENDIF');
    return new CidrMatcher(root);
  }

  lookup(key: string): LookupResult {
    const a = parseAddr(key);
    if (!a) return undefined;
    return evalSegments(this.segments, a);
  }
}

function parseOr(fail: (line: number, why: string) => never, line: number, pattern: string): Net {
  try {
    return parseNet(pattern);
  } catch (err) {
    return fail(line, (err as Error).message);
  }
}

function addToRun(run: IndexedRun, rule: Rule): void {
  const { net } = rule;
  if (net.v6) {
    let slot = run.v6.find((e) => e[0] === net.prefix);
    if (!slot) { slot = [net.prefix, new Map()]; run.v6.push(slot); run.v6.sort((x, y) => y[0] - x[0]); }
    const k = v6Key(net.hex, net.prefix);
    if (!slot[1].has(k)) slot[1].set(k, rule); // an earlier identical network shadows later ones
  } else {
    let slot = run.v4.find((e) => e[0] === net.prefix);
    if (!slot) { slot = [net.prefix, new Map()]; run.v4.push(slot); run.v4.sort((x, y) => y[0] - x[0]); }
    const k = v4Key(net.v4, net.prefix);
    if (!slot[1].has(k)) slot[1].set(k, rule);
  }
}

function evalSegments(segments: Segment[], a: ParsedAddr): LookupResult {
  for (let s = 0; s < segments.length; s++) {
    const seg = segments[s];
    if (seg.kind === 'run') {
      let best: Rule | undefined;
      if (a.v6) {
        for (const [prefix, map] of seg.v6) {
          const r = map.get(v6Key(a.hex, prefix));
          if (r && (!best || r.index < best.index)) best = r;
        }
      } else {
        const lists = seg.v4;
        for (let i = 0; i < lists.length; i++) {
          const r = lists[i][1].get(v4Key(a.v4, lists[i][0]));
          if (r !== undefined && (best === undefined || r.index < best.index)) best = r;
        }
      }
      if (best) return best.result;
    } else if (seg.kind === 'rule') {
      if (netMatches(seg.net, a) !== seg.negate) return seg.result;
    } else if (netMatches(seg.net, a) !== seg.negate) {
      const r = evalSegments(seg.body, a);
      if (r !== undefined) return r;
    }
  }
  return undefined;
}
