// Parsing of Postfix parameter values: time with units, sizes, booleans, integers and lists.
// Trusts nothing: every parser returns a result or a message saying what was expected.

export type Parsed<T> = { ok: true; value: T } | { ok: false; expected: string };

const TIME_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** Postfix time value: a number with an optional unit s, m, h, d or w (bare numbers use `unit`). */
export function parseTime(value: string, unit: string = 's'): Parsed<number> {
  const m = /^\s*(\d+)\s*([smhdw]?)\s*$/.exec(value);
  if (!m) return { ok: false, expected: 'a time value: a number with optional unit s, m, h, d or w' };
  const u = m[2] || unit;
  return { ok: true, value: Number(m[1]) * TIME_UNITS[u] };
}

export function parseInt10(value: string): Parsed<number> {
  const m = /^\s*(-?\d+)\s*$/.exec(value);
  if (!m) return { ok: false, expected: 'an integer' };
  return { ok: true, value: Number(m[1]) };
}

/** Sizes are byte counts in Postfix (message_size_limit = 10240000). */
export function parseSize(value: string): Parsed<number> {
  const m = /^\s*(\d+)\s*$/.exec(value);
  if (!m) return { ok: false, expected: 'a size in bytes (a non-negative integer)' };
  return { ok: true, value: Number(m[1]) };
}

export function parseBool(value: string): Parsed<boolean> {
  const v = value.trim().toLowerCase();
  if (v === 'yes' || v === 'true') return { ok: true, value: true };
  if (v === 'no' || v === 'false') return { ok: true, value: false };
  return { ok: false, expected: 'yes or no' };
}

/**
 * Split a Postfix list: elements separated by commas and/or white space. A `{ ... }` group
 * (Postfix 3.0 per-service syntax, e.g. `{ inet:host:port, default_action=DUNNO }`) and a
 * `type:{ ... }` inline table stay one element.
 */
export function splitList(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of value) {
    if (ch === '{') depth++;
    if (ch === '}') depth = Math.max(0, depth - 1);
    if (depth === 0 && (ch === ',' || ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r')) {
      if (cur) out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

/** A reply code parameter: 4xx or 5xx. `unusual` flags codes that are not standard SMTP replies. */
export function parseCode(value: string): Parsed<number> & { unusual?: boolean } {
  const m = /^\s*([45]\d\d)\s*$/.exec(value);
  if (!m) return { ok: false, expected: 'an SMTP reply code in the range 400-599' };
  const code = Number(m[1]);
  return { ok: true, value: code, unusual: !STANDARD_CODES.has(code) };
}

/** Reply codes RFC 5321 (and its extensions RFC 3463/4954/3030) define for 4xx/5xx. */
const STANDARD_CODES = new Set([421, 450, 451, 452, 454, 455, 500, 501, 502, 503, 504, 521, 523, 530, 534, 535, 538, 550, 551, 552, 553, 554, 555, 556]);
