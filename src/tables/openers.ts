// One opener per table type. File-backed types are wrapped in Reloading so a changed file is
// picked up at most `checkIntervalMs` after it changes, without a restart. Trusts the registry to
// pass the part after `type:`; resolves relative paths against opts.baseDir.

import { isAbsolute, resolve } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import type { LookupResult, LookupTable, OpenTableOptions, TableOpener } from './types.js';
import { parseKeyValueSource } from './source.js';
import { CidrMatcher } from './cidr.js';
import { RegexpMatcher, type RegexpDialect } from './regexp.js';
import { LmdbDict, CompiledReader, COMPILED_SUFFIX, recompileHint } from './lmdb.js';
import { inspectFile, describe } from './fileinfo.js';
import { Reloading, type FileStamp } from './reload.js';

const noWarn = (): void => {};

export function resolveTablePath(name: string, opts: OpenTableOptions): string {
  return isAbsolute(name) ? name : resolve(opts.baseDir ?? process.cwd(), name);
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`open ${path}: ${code === 'ENOENT' ? 'No such file or directory' : code === 'EACCES' ? 'Permission denied' : (err as Error).message}`);
  }
}

/** Strip `{ … }` around inline/static table text. */
function unbrace(ref: string, s: string): string {
  const t = s.trim();
  if (!t.startsWith('{')) return t;
  if (!t.endsWith('}')) throw new Error(`${ref}: missing '}' at end of table`);
  return t.slice(1, -1).trim();
}

/** Split `a=b, { c = d e }, f=g` on commas/white space, keeping `{ }` groups whole. */
export function splitInlineList(ref: string, s: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === ',' || c === ' ' || c === '\t' || c === '\n') { i++; continue; }
    if (c === '{') {
      let depth = 0;
      let j = i;
      for (; j < s.length; j++) {
        if (s[j] === '{') depth++;
        else if (s[j] === '}' && --depth === 0) break;
      }
      if (j >= s.length) throw new Error(`${ref}: missing '}' after "${s.slice(i)}"`);
      out.push(s.slice(i + 1, j).trim());
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < s.length && !', \t\n{'.includes(s[j])) j++;
    out.push(s.slice(i, j));
    i = j;
  }
  return out;
}

class MapTable implements LookupTable {
  constructor(readonly ref: string, readonly type: string, private readonly map: Map<string, string>) {}
  get(key: string): LookupResult {
    return this.map.get(key.toLowerCase());
  }
  entries(): Iterable<[string, string]> {
    return this.map.entries();
  }
  close(): void {}
}

const openInline: TableOpener = (type, name, ref) => {
  const body = unbrace(ref, name);
  if (!name.trim().startsWith('{')) throw new Error(`${ref}: inline table must be enclosed in { }`);
  const map = new Map<string, string>();
  for (const item of splitInlineList(ref, body)) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`${ref}: missing '=' after attribute name: "${item}"`);
    const key = item.slice(0, eq).trim().toLowerCase();
    if (!map.has(key)) map.set(key, item.slice(eq + 1).trim());
  }
  return new MapTable(ref, type, map);
};

const openStatic: TableOpener = (type, name, ref) => {
  const value = unbrace(ref, name);
  return { ref, type, get: () => value, close: () => {} };
};

/** A table whose contents are rebuilt from a file when it changes. */
class FileTable<T> implements LookupTable {
  constructor(
    readonly ref: string,
    readonly type: string,
    private readonly holder: Reloading<T>,
    private readonly lookup: (t: T, key: string) => LookupResult,
    private readonly list?: (t: T) => Iterable<[string, string]>,
    private readonly closeFn?: (t: T) => void,
  ) {
    if (list) this.entries = () => list(this.holder.current());
  }
  entries?: () => Iterable<[string, string]>;
  get(key: string): LookupResult {
    return this.lookup(this.holder.current(), key);
  }
  /** Force a change check now (a SIGHUP-style reload). */
  refresh(): void {
    this.holder.check();
  }
  close(): void {
    this.closeFn?.(this.holder.peek());
  }
}

const openTexthash: TableOpener = (type, name, ref, opts) => {
  const path = resolveTablePath(name, opts);
  const holder = new Reloading(path, (p) => parseKeyValueSource(p, readText(p), opts.warn ?? noWarn), opts.checkIntervalMs ?? 1000);
  return new FileTable(ref, type, holder, (m, k) => m.get(k.toLowerCase()), (m) => m.entries());
};

const openCidr: TableOpener = (type, name, ref, opts) => {
  const t = name.trim();
  if (t.startsWith('{')) {
    // cidr:{ {rule}, {rule} } (Postfix 3.7): each element is one rule line.
    const lines = splitInlineList(ref, unbrace(ref, t)).map((text, i) => ({ line: i + 1, text }));
    const m = CidrMatcher.fromLines(`cidr map ${ref}`, lines);
    return { ref, type, get: (k: string) => m.lookup(k), close: () => {} };
  }
  const path = resolveTablePath(name, opts);
  const holder = new Reloading(path, (p) => CidrMatcher.parse(`cidr map ${p}`, readText(p)), opts.checkIntervalMs ?? 1000);
  return new FileTable(ref, type, holder, (m, k) => m.lookup(k));
};

const openRegexp: TableOpener = (type, name, ref, opts) => {
  const dialect = type as RegexpDialect;
  const path = resolveTablePath(name, opts);
  const holder = new Reloading(path, (p) => RegexpMatcher.parse(dialect, `${type} map ${p}`, readText(p)), opts.checkIntervalMs ?? 1000);
  return new FileTable(ref, type, holder, (m, k) => m.lookup(k));
};

/** The LMDB file changes in place (committed transactions are visible at once); only a new inode needs a reopen. */
const sameInode = (a: FileStamp | undefined, b: FileStamp | undefined): boolean =>
  !a || !b ? a === b : a.ino === b.ino && a.dev === b.dev;

/**
 * Open a compiled table's database. When it is missing, say what is there instead: Postfix's
 * hash:/btree: tables are Berkeley DB files `name.db`, which Backstop neither reads nor touches
 * (Postfix may still be using them); the fix is to compile the text source for Backstop.
 */
export function openCompiledDict(type: string, source: string): LmdbDict {
  const path = source + COMPILED_SUFFIX;
  const fix = recompileHint(path, type);
  if (!existsSync(path)) {
    const db = inspectFile(source + '.db');
    if (db.kind !== 'missing') {
      const what = db.kind === 'berkeley-db' ? `${source}.db is Postfix's Berkeley DB ${db.access} file, which Backstop does not read` : `${source}.db is ${describe(db)}`;
      const src = existsSync(source) ? '' : ` (the text source ${source} is missing too: copy it from the Postfix host)`;
      throw new Error(`open database ${path}: No such file or directory; ${what}: compile the text source with: backstop postmap ${type}:${source}${src}`);
    }
  }
  return LmdbDict.open(path, { create: false, fix });
}

const openCompiled: TableOpener = (type, name, ref, opts) => {
  const source = resolveTablePath(name, opts);
  const holder = new Reloading(source + COMPILED_SUFFIX, () => new CompiledReader(openCompiledDict(type, source)), opts.checkIntervalMs ?? 1000, (old) => old.close(), sameInode);
  return new FileTable(ref, type, holder, (r, k) => r.get(k.toLowerCase()), (r) => r.dict.entries(), (r) => r.close());
};

/** Postfix's dict_open_info[]: table type → opener. Types that postmap can compile are marked. */
export const TABLE_OPENERS: Readonly<Record<string, { open: TableOpener; compiled: boolean }>> = {
  cidr: { open: openCidr, compiled: false },
  inline: { open: openInline, compiled: false },
  static: { open: openStatic, compiled: false },
  texthash: { open: openTexthash, compiled: false },
  regexp: { open: openRegexp, compiled: false },
  pcre: { open: openRegexp, compiled: false },
  hash: { open: openCompiled, compiled: true },
  btree: { open: openCompiled, compiled: true },
  lmdb: { open: openCompiled, compiled: true },
};
