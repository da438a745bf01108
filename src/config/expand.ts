// `$name` expansion exactly as Postfix's mac_expand does it, applied lazily at use:
//   $name  ${name}  $(name)   the value of name (empty when undefined)
//   ${name?text} ${name?{text}}          text when name is defined and non-empty
//   ${name:text} ${name:{text}}          text when name is undefined or empty
//   ${name?{text1}:{text2}}              Postfix 3.5 if-then-else
//   $$                                   a literal $
// Recursion (a = $b, b = $a) is an error, never a hang.

export type Lookup = (name: string) => string | undefined;

export class ExpansionError extends Error {}

const MAX_DEPTH = 100;

export function expand(value: string, lookup: Lookup, stack: string[] = []): string {
  if (!value.includes('$')) return value;
  let out = '';
  let i = 0;
  while (i < value.length) {
    const ch = value[i];
    if (ch !== '$') {
      out += ch;
      i++;
      continue;
    }
    const next = value[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{' || next === '(') {
      const close = next === '{' ? '}' : ')';
      const end = matching(value, i + 1, next, close);
      if (end < 0) throw new ExpansionError(`unbalanced '${next}' in "${value}"`);
      out += expandBraced(value.slice(i + 2, end), lookup, stack);
      i = end + 1;
      continue;
    }
    const m = /^[A-Za-z0-9_]+/.exec(value.slice(i + 1));
    if (!m) {
      out += '$';
      i++;
      continue;
    }
    out += valueOf(m[0], lookup, stack);
    i += 1 + m[0].length;
  }
  return out;
}

function matching(s: string, open: number, o: string, c: string): number {
  let depth = 0;
  for (let j = open; j < s.length; j++) {
    if (s[j] === o) depth++;
    else if (s[j] === c && --depth === 0) return j;
  }
  return -1;
}

function valueOf(name: string, lookup: Lookup, stack: string[]): string {
  if (stack.includes(name)) {
    throw new ExpansionError(`recursive parameter reference: ${[...stack, name].map((n) => '$' + n).join(' -> ')}`);
  }
  if (stack.length > MAX_DEPTH) throw new ExpansionError('unreasonable macro call nesting');
  const v = lookup(name);
  if (v === undefined) return '';
  return expand(v, lookup, [...stack, name]);
}

/** Strip one level of `{...}` around a conditional's text, as Postfix 3.5 allows. */
function unwrap(text: string): string {
  const t = text.trim();
  if (t.startsWith('{') && matching(t, 0, '{', '}') === t.length - 1) return t.slice(1, -1);
  return text;
}

function expandBraced(inner: string, lookup: Lookup, stack: string[]): string {
  const m = /^([A-Za-z0-9_]+)\s*([?:]?)/.exec(inner);
  if (!m) throw new ExpansionError(`bad parameter reference: \${${inner}}`);
  const name = m[1];
  const op = m[2];
  if (!op) {
    if (inner.slice(m[0].length).trim()) throw new ExpansionError(`bad parameter reference: \${${inner}}`);
    return valueOf(name, lookup, stack);
  }
  const rest = inner.slice(m[0].length);
  const v = valueOf(name, lookup, stack);
  const defined = v !== '';
  if (op === '?') {
    // ${name?{a}:{b}} — if-then-else (Postfix 3.5).
    const t = rest.trim();
    if (t.startsWith('{')) {
      const end = matching(t, 0, '{', '}');
      const after = t.slice(end + 1).trim();
      if (end > 0 && after.startsWith(':')) {
        const thenText = t.slice(1, end);
        const elseText = unwrap(after.slice(1));
        return expand(defined ? thenText : elseText, lookup, stack);
      }
    }
    return defined ? expand(unwrap(rest), lookup, stack) : '';
  }
  return defined ? '' : expand(unwrap(rest), lookup, stack);
}
