// Reader for postmap(1)/texthash source files: `key whitespace value`, `#` comment lines, empty
// lines ignored, a line that starts with white space continues the previous logical line. Used by
// texthash:, postmap compile, cidr: and regexp: (which read the same logical lines). Trusts only
// that the file is text; reports problems with the file name and line number.

import { readFileSync } from 'node:fs';

export interface SourceLine {
  /** Line number where the logical line starts (1-based). */
  line: number;
  text: string;
}

/** Read a file into logical lines (comments and blank lines dropped, continuations joined). */
export function readLogicalLines(path: string): SourceLine[] {
  let data: string;
  try {
    data = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`open ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (err as Error).message}`);
  }
  return splitLogicalLines(data);
}

export function splitLogicalLines(data: string): SourceLine[] {
  const out: SourceLine[] = [];
  const raw = data.split('\n');
  let cur: SourceLine | undefined;
  for (let i = 0; i < raw.length; i++) {
    let s = raw[i];
    if (s.length > 0 && s.charCodeAt(s.length - 1) === 13) s = s.slice(0, -1);
    const c0 = s.charCodeAt(0);
    // Postfix: a comment line or an all-blank line ends nothing and is skipped.
    if (s.length === 0) continue;
    const trimmed = c0 === 32 || c0 === 9 ? s.trim() : s;
    if (trimmed.length === 0 || trimmed.charCodeAt(0) === 35 /* # */) continue;
    if (c0 === 32 || c0 === 9) {
      if (cur) {
        cur.text += ' ' + trimmed;
        continue;
      }
      // Leading white space with nothing to continue: Postfix treats it as a line of its own.
    }
    cur = { line: i + 1, text: trimmed.trimEnd() };
    out.push(cur);
  }
  return out;
}

const WS = /[ \t]/;

/** Split `key whitespace value`; the value may be empty (Postfix stores an empty string). */
export function splitKeyValue(text: string): [string, string] {
  const m = WS.exec(text);
  if (!m) return [text, ''];
  return [text.slice(0, m.index), text.slice(m.index).trim()];
}

export interface KeyValueEntry {
  key: string;
  value: string;
  line: number;
}

/**
 * Parse a postmap source into entries with folded keys. Duplicate keys keep the first value and
 * produce Postfix's warning, as postmap and texthash do without -r/-w.
 */
export function parseKeyValueSource(path: string, data: string, warn: (m: string) => void): Map<string, string> {
  const map = new Map<string, string>();
  for (const { line, text } of splitLogicalLines(data)) {
    const [k, value] = splitKeyValue(text);
    const key = k.toLowerCase();
    if (map.has(key)) {
      warn(`${path}, line ${line}: duplicate entry: "${key}"`);
      continue;
    }
    map.set(key, value);
  }
  return map;
}

export function readKeyValueSource(path: string, warn: (m: string) => void): Map<string, string> {
  let data: string;
  try {
    data = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`open ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (err as Error).message}`);
  }
  return parseKeyValueSource(path, data, warn);
}
