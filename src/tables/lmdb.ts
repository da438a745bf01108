// LMDB storage: the writable dictionary (`LmdbDict`, also the base of the address-verify cache)
// and the compiled form of hash:/btree:/lmdb: tables. A source file `name` compiles into the LMDB
// file `name.lmdb` beside it (one data file, plus LMDB's `name.lmdb-lock`). LMDB lets several
// processes read and write one database at once (readers never block, writers take LMDB's write
// lock), so `postmap -q/-s/-d` work on a database that a running server has open. Trusts LMDB for
// atomic commits; trusts nothing in the text source.

import { open, type RootDatabase } from 'lmdb';
import { existsSync, renameSync, rmSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { parseKeyValueSource, splitLogicalLines } from './source.js';
import { readFileSync } from 'node:fs';

/** File name suffix of a compiled table (`hash:/etc/x` → `/etc/x.lmdb`). */
export const COMPILED_SUFFIX = '.lmdb';

/** LMDB keys are limited (lmdb-js default 1978 bytes); longer keys are an error, not a truncation. */
export const MAX_KEY_BYTES = 1978;

export interface LmdbDictOptions {
  readOnly?: boolean;
  /** Create the file when missing (default true unless readOnly). */
  create?: boolean;
}

/**
 * A string → string dictionary in one LMDB file, safe to share between processes. Writes are
 * synchronous single-key transactions; reads are synchronous and see the latest committed data.
 */
export class LmdbDict {
  private constructor(readonly path: string, private readonly db: RootDatabase<string, string>) {}

  static open(path: string, opts: LmdbDictOptions = {}): LmdbDict {
    const readOnly = opts.readOnly ?? false;
    const create = opts.create ?? !readOnly;
    if (!create && !existsSync(path)) throw new Error(`open database ${path}: No such file or directory`);
    try {
      const db = open<string, string>({ path, encoding: 'string', readOnly, noSubdir: true } as never);
      return new LmdbDict(path, db as unknown as RootDatabase<string, string>);
    } catch (err) {
      throw new Error(`open database ${path}: ${(err as Error).message}`);
    }
  }

  get(key: string): string | undefined {
    return this.db.get(key);
  }

  put(key: string, value: string): void {
    checkKey(this.path, key);
    this.db.putSync(key, value);
  }

  /** Delete one key; true when it was present. */
  del(key: string): boolean {
    return this.db.removeSync(key);
  }

  /** All elements in database (key) order. */
  *entries(): IterableIterator<[string, string]> {
    for (const { key, value } of this.db.getRange()) yield [key as string, value as string];
  }

  /** Run `fn` in one write transaction: other readers see all of its changes or none. */
  transaction<T>(fn: () => T): T {
    return this.db.transactionSync(fn);
  }

  /** Remove every element (inside `transaction()` this is part of the same atomic commit). */
  clear(): void {
    this.db.clearSync();
  }

  close(): void {
    this.db.close();
  }

  /** The id of the last committed write transaction (LMDB's meta page, shared by every process). */
  lastTxnId(): number {
    return (this.db as unknown as { env: { info(): { lastTxnId: number } } }).env.info().lastTxnId;
  }

  /** Drop this process's read snapshot, so the next read starts a fresh one (lmdb-js otherwise keeps it to the end of the event-loop turn). */
  resetSnapshot(): void {
    (this.db as unknown as { resetReadTxn(): void }).resetReadTxn();
  }
}

/** Entries kept per generation of a compiled table's hot-key cache (two generations: at most 2 × this). */
export const HOT_CACHE_GENERATION = 32_768;
const MISS: unique symbol = Symbol('miss');

/**
 * Read side of a compiled table: LMDB lookups behind a bounded hot-key cache (hits and misses).
 * A random lookup in a large LMDB B-tree costs about a microsecond of cache-missing page walks;
 * repeated keys (the same clients, senders and domains) are answered from a Map instead.
 *
 * Invalidation: once per microtask checkpoint (the first lookup after any `await`/callback
 * boundary) the reader compares LMDB's last committed transaction id — read from the shared meta
 * page, so commits by `postmap` in any process count — with the id the cache was filled under.
 * On a change it clears the cache and resets the read snapshot; the id is read BEFORE the fresh
 * snapshot starts, so cached data is never older than the id it is tagged with. A recompile or a
 * `postmap -d` is therefore seen by the next lookup after the current synchronous run of code,
 * exactly like uncached LMDB reads. The cache is two Maps ("young", "old"): a lookup that misses
 * both goes to LMDB and lands in young; an old hit is promoted; when young is full it becomes old
 * and the previous old is dropped — an approximate LRU in O(1) with at most 2 ×
 * HOT_CACHE_GENERATION entries.
 */
export class CompiledReader {
  private young = new Map<string, string | typeof MISS>();
  private old = new Map<string, string | typeof MISS>();
  private txnId = -1;
  private checked = false;
  private readonly unchecked = (): void => {
    this.checked = false;
  };

  constructor(readonly dict: LmdbDict, private readonly generation = HOT_CACHE_GENERATION) {}

  /** `key` must already be case-folded. */
  get(key: string): string | undefined {
    if (!this.checked) this.revalidate();
    let v = this.young.get(key);
    if (v === undefined) {
      v = this.old.get(key);
      if (v === undefined) v = this.dict.get(key) ?? MISS;
      this.young.set(key, v);
      if (this.young.size >= this.generation) {
        this.old = this.young;
        this.young = new Map();
      }
    }
    return v === MISS ? undefined : v;
  }

  private revalidate(): void {
    this.checked = true;
    queueMicrotask(this.unchecked);
    const id = this.dict.lastTxnId();
    if (id !== this.txnId) {
      this.young.clear();
      this.old.clear();
      this.txnId = id;
      this.dict.resetSnapshot();
    }
  }

  close(): void {
    this.young.clear();
    this.old.clear();
    this.dict.close();
  }
}

function checkKey(path: string, key: string): void {
  if (key.length === 0) throw new Error(`${path}: empty key`);
  // lmdb-js's key encoding uses NUL to separate the parts of compound keys: such a key would list back as an array.
  if (key.includes('\0')) throw new Error(`${path}: key contains a NUL character: "${key.slice(0, 40).replace(/\0/g, '\\0')}"`);
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new Error(`${path}: key too long (more than ${MAX_KEY_BYTES} bytes): "${key.slice(0, 40)}..."`);
}

export interface CompileResult {
  path: string;
  entries: number;
}

/**
 * Compile a postmap(1) text source into `source.lmdb`, atomically for readers:
 * - No database yet: build `source.lmdb.tmp.PID` and rename it into place (nobody can have the
 *   target open, so no lock file is shared), then remove the temporary lock file.
 * - Database exists: replace the contents in ONE write transaction (clear + put all). LMDB's
 *   commit switches the meta page atomically, so readers — in this or any other process — see
 *   the old table or the new one, never a mix. We deliberately do not rename a new file over an
 *   existing one: LMDB keeps its reader table and the current transaction id in the lock file
 *   `name.lmdb-lock`, which belongs to a path, not to a file. A renamed-in file would share that
 *   lock file with processes still reading the old file, and a reader picks its meta page from the
 *   lock file's transaction id — it could read the wrong snapshot. Postfix's own lmdb postmap
 *   also rewrites in one bulk transaction.
 */
export function compileSource(source: string, warn: (m: string) => void): CompileResult {
  let data: string;
  try {
    data = readFileSync(source, 'utf8');
  } catch (err) {
    throw new Error(`open ${source}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : (err as Error).message}`);
  }
  const map = parseKeyValueSource(source, data, warn);
  for (const key of map.keys()) {
    try {
      checkKey(source, key);
    } catch (err) {
      // Name the line, as for every other source error (first logical line with this key).
      const at = splitLogicalLines(data).find((l) => l.text.split(/[ \t]/, 1)[0].toLowerCase() === key);
      throw at ? new Error((err as Error).message.replace(`${source}: `, `${source}, line ${at.line}: `)) : err;
    }
  }
  data = '';
  const keys = [...map.keys()].sort();
  const target = source + COMPILED_SUFFIX;
  if (existsSync(target)) {
    const dict = LmdbDict.open(target);
    try {
      dict.transaction(() => {
        dict.clear();
        for (const k of keys) dict['db'].putSync(k, map.get(k)!);
      });
    } finally {
      dict.close();
    }
    return { path: target, entries: keys.length };
  }
  const tmp = join(dirname(target), `${basename(target)}.tmp.${process.pid}`);
  rmSync(tmp, { force: true });
  rmSync(tmp + '-lock', { force: true });
  const dict = LmdbDict.open(tmp);
  try {
    dict.transaction(() => {
      for (const k of keys) dict['db'].putSync(k, map.get(k)!);
    });
  } catch (err) {
    dict.close();
    rmSync(tmp, { force: true });
    rmSync(tmp + '-lock', { force: true });
    throw err;
  }
  dict.close();
  fsyncPath(tmp);
  renameSync(tmp, target);
  rmSync(tmp + '-lock', { force: true });
  fsyncPath(dirname(target));
  return { path: target, entries: keys.length };
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
