// LMDB storage: the writable dictionary (`LmdbDict`, also the base of the address-verify cache)
// and the compiled form of hash:/btree:/lmdb: tables. A source file `name` compiles into the LMDB
// file `name.lmdb` beside it (one data file, plus LMDB's `name.lmdb-lock`). LMDB lets several
// processes read and write one database at once (readers never block, writers take LMDB's write
// lock), so `postmap -q/-s/-d` work on a database that a running server has open. Trusts LMDB for
// atomic commits; trusts nothing in the text source.

import { open, type RootDatabase } from 'lmdb';
import { existsSync, renameSync, rmSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { parseKeyValueSource } from './source.js';
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
}

function checkKey(path: string, key: string): void {
  if (key.length === 0) throw new Error(`${path}: empty key`);
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
  data = '';
  for (const key of map.keys()) checkKey(source, key);
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
