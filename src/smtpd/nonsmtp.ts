// Postfix's protections against clients that do not speak SMTP: smtpd_forbidden_commands (an
// unknown command whose first word is listed — CONNECT, GET, POST from HTTP clients and proxies,
// anything not starting with a capital letter — ends the session with "221 2.7.0 Error: I can
// break rules, too. Goodbye.") and is_header() (a message header line sent as a command, as
// from a client that lost synchronisation). Also the two ways Postfix writes client bytes into
// the log: escape() (C escapes, octal for the rest) and printable() ('?' for the rest).
// Trusts nothing it reads.

/**
 * A compiled smtpd_forbidden_commands list: plain words match a command name case-insensitively;
 * `regexp:{{/re/flags value}}` and `pcre:{{/re/flags value}}` (Postfix's inline regexp tables)
 * match when the pattern does. Parsed by hand: a table *type* in a string list needs only this
 * inline form here, and the tables module's openers work on files and key/value lookups.
 */
export interface CommandList {
  matches(name: string): boolean;
}

export function compileCommandList(value: string): CommandList {
  const words: string[] = [];
  const patterns: RegExp[] = [];
  for (const item of splitList(value)) {
    const m = /^(?:regexp|pcre):\{\s*\{\s*\/((?:\\.|[^/\\])*)\/([a-zA-Z]*)(?:\s+[^}]*)?\}\s*\}$/.exec(item);
    if (m) {
      // Postfix's regexp tables are case-insensitive unless the `i` flag is given (it toggles).
      const ci = !m[2].includes('i');
      patterns.push(new RegExp(m[1], ci ? 'i' : ''));
    } else if (/^[a-z]+:/i.test(item)) {
      throw new Error(`smtpd_forbidden_commands: unsupported table "${item}" (use words, or regexp:{{/pattern/ value}})`);
    } else words.push(item.toUpperCase());
  }
  return {
    matches(name: string): boolean {
      return words.includes(name.toUpperCase()) || patterns.some((re) => re.test(name));
    },
  };
}

/** Whitespace/comma separated items; `{...}` groups (nested) stay whole. */
function splitList(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of value) {
    if (ch === '{') depth++;
    if (ch === '}') depth = Math.max(0, depth - 1);
    if (depth === 0 && /[\s,]/.test(ch)) {
      if (cur) out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

/** Postfix's is_header(): a header name (printable, no space or colon) followed by a colon. */
export function isHeader(word: string): boolean {
  const m = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/.exec(word);
  return !!m;
}

/** Postfix's escape(): C escapes for \a\b\f\n\r\t\v and backslash, octal for other non-printables. */
export function escapeBytes(b: Buffer): string {
  const named: Record<number, string> = { 7: '\\a', 8: '\\b', 12: '\\f', 10: '\\n', 13: '\\r', 9: '\\t', 11: '\\v', 92: '\\\\' };
  let s = '';
  for (const c of b) {
    if (named[c]) s += named[c];
    else if (c >= 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += '\\' + c.toString(8).padStart(3, '0');
  }
  return s;
}

/** Postfix's printable(s, '?'): every byte outside printable ASCII becomes '?'. */
export function printable(b: Buffer): string {
  let s = '';
  for (const c of b) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '?';
  return s;
}
