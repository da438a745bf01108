// Reader for postmap(1)/texthash source files: `key whitespace value`, `#` comment lines, empty
// lines ignored, a line that starts with white space continues the previous logical line. Used by
// texthash:, postmap compile, cidr: and regexp: (which read the same logical lines). Trusts only
// that the file is text; reports problems with the file name and line number.

export interface SourceLine {
  /** Line number where the logical line starts (1-based). */
  line: number;
  text: string;
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

export interface KeyValueEntry {
  key: string;
  value: string;
  line: number;
}

/**
 * Parse a postmap source into a map with folded keys. Duplicate keys keep the first value and
 * produce Postfix's warning, as postmap and texthash do without -r/-w. This is postmap's hot loop
 * (a million lines must compile in seconds), so it scans the string once without per-line arrays.
 */
export function parseKeyValueSource(path: string, data: string, warn: (m: string) => void): Map<string, string> {
  const map = new Map<string, string>();
  let pending: string | undefined;
  let pendingLine = 0;
  const flush = (): void => {
    const text = pending!;
    pending = undefined;
    let i = 0;
    const n = text.length;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9) break;
      i++;
    }
    const key = text.slice(0, i).toLowerCase();
    let j = i;
    while (j < n) {
      const c = text.charCodeAt(j);
      if (c !== 32 && c !== 9) break;
      j++;
    }
    if (map.has(key)) {
      warn(`${path}, line ${pendingLine}: duplicate entry: "${key}"`);
      return;
    }
    map.set(key, j === n ? '' : text.slice(j));
  };
  let pos = 0;
  let lineNo = 0;
  const len = data.length;
  while (pos < len) {
    let end = data.indexOf('\n', pos);
    if (end < 0) end = len;
    lineNo++;
    let stop = end;
    if (stop > pos && data.charCodeAt(stop - 1) === 13) stop--;
    const start = pos;
    pos = end + 1;
    if (stop === start) continue;
    const c0 = data.charCodeAt(start);
    if (c0 === 35) continue; // # comment
    if (c0 === 32 || c0 === 9) {
      const t = data.slice(start, stop).trim();
      if (t.length === 0 || t.charCodeAt(0) === 35) continue;
      if (pending !== undefined) {
        pending += ' ' + t;
        continue;
      }
      pending = t;
      pendingLine = lineNo;
      continue;
    }
    if (pending !== undefined) flush();
    // trailing white space is not part of the value
    let e = stop;
    while (e > start) {
      const c = data.charCodeAt(e - 1);
      if (c !== 32 && c !== 9) break;
      e--;
    }
    pending = data.slice(start, e);
    pendingLine = lineNo;
  }
  if (pending !== undefined) flush();
  return map;
}
