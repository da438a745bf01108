// The `name = value` files that point Backstop at an outside service (Postfix's pgsql:/redis-like
// configuration files: the PostgreSQL queue store, the Redis verify cache): blank lines and `#`
// comments skipped, every other line split at its first `=`. Each entry carries `where`, the file
// and line for the caller's error messages; a line without `=` is an error naming both.

export interface KeyValue {
  key: string;
  value: string;
  /** "KIND config FILE, line N", for errors about this entry. */
  where: string;
}

export function parseKeyValueLines(kind: string, file: string, text: string): KeyValue[] {
  const out: KeyValue[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `${kind} config ${file}, line ${i + 1}`;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`${where}: expected "name = value", got "${line}"`);
    out.push({ key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim(), where });
  }
  return out;
}
