// LMDB storage: the writable dictionary (`LmdbDict`, also the base of the address-verify cache)
// and the compiled form of hash:/btree:/lmdb: tables. A source file `name` compiles into the LMDB
// file `name.lmdb` beside it (one data file, plus LMDB's `name.lmdb-lock`). LMDB lets several
// processes read and write one database at once (readers never block, writers take LMDB's write
// lock), so `postmap -q/-s/-d` work on a database that a running server has open. Trusts LMDB for
// atomic commits; trusts nothing in the text source, nor in a database file before fileinfo.ts
// has looked at it (LMDB's C code crashes the process on a damaged file).
//
// The file format is Postfix's, so the same `lmdb:` file serves both programs:
// - LMDB's 0.9 data format when the `lmdb` binding was built for it (`npm run build:lmdb`, run at
//   install; lmdbFormat() tells which build is loaded). The package's prebuilt binary writes the
//   1.0 format, which Postfix's liblmdb cannot read.
// - Keys and values are stored with their terminating NUL byte, as Postfix's dict_lmdb does by
//   default (DICT_FLAG_TRY1NULL); lookups also try the key without it (DICT_FLAG_TRY0NULL), so a
//   file written by `postmap -n` is read too. Values are read up to their first NUL.

import * as lmdbPackage from 'lmdb';
import { open, type RootDatabase } from 'lmdb';
import { existsSync, renameSync, rmSync, openSync, fsyncSync, closeSync, statSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { parseKeyValueSource, splitLogicalLines } from './source.js';
import { readFileSync } from 'node:fs';
import { checkLmdbFile, TableFileError, type FileInfo, type LmdbFormat } from './fileinfo.js';

/** File name suffix of a compiled table (`hash:/etc/x` → `/etc/x.lmdb`). */
export const COMPILED_SUFFIX = '.lmdb';

/**
 * Longest key, in bytes. Postfix's liblmdb is built with LMDB's default MDB_MAXKEYSIZE of 511
 * bytes, and we store the key's NUL too: a longer key would make the file unreadable to Postfix's
 * lookups, so it is an error at compile time, not a truncation.
 */
export const MAX_KEY_BYTES = 510;

/**
 * The LMDB data format of the loaded binding: '0.9' (data version 1, Postfix's) for a build from
 * the package's dependencies/lmdb-data-v1 sources, '1.0' for the prebuilt binary. Same rule as
 * lmdb-js's own open.js (native version below 0.9.80 = the v1 data format).
 */
export function lmdbFormat(): LmdbFormat {
  const v = (lmdbPackage as unknown as { version: { major: number; minor: number; patch: number } }).version;
  return v.major + v.minor / 100 + v.patch / 10000 < 0.098 ? '0.9' : '1.0';
}

/** Inspect `path` before LMDB maps it; throws a TableFileError naming the file and `fix`. */
export function checkDatabaseFile(path: string, mayCreate: boolean, fix: string): FileInfo {
  return checkLmdbFile(path, { format: lmdbFormat(), mayCreate, fix });
}

/** `fix` text for a compiled table: how to rebuild `path` (a `.lmdb` file) from its source. */
export function recompileHint(path: string, type = 'lmdb'): string {
  const source = path.endsWith(COMPILED_SUFFIX) ? path.slice(0, -COMPILED_SUFFIX.length) : path;
  return `rebuild it from its text source with: backstop postmap ${type}:${source}`;
}

/** Postfix's key or value bytes: the string and its terminating NUL. */
export function withNul(s: string): Buffer {
  const b = Buffer.allocUnsafe(Buffer.byteLength(s) + 1);
  b[b.write(s)] = 0;
  return b;
}

/** Scratch space for lookup keys (LMDB's key limit is far below; longer keys take the slow path). */
const KEY_SCRATCH = Buffer.alloc(4096);

/** A stored key or value as a string: up to its first NUL (as Postfix's C strings end there). */
export function fromStored(b: Buffer): string {
  const z = b.indexOf(0);
  return b.toString('utf8', 0, z < 0 ? b.length : z);
}

/**
 * One LMDB environment per file per process. LMDB 0.9 must not have one file open twice in a
 * process: closing the second environment clears every reader slot of this process id in the
 * lock file and drops its fcntl locks, and the first environment's next read fails (EINVAL) —
 * which a server that runs `postmap -d` in-process, or a verify cache that is also queried as a
 * table, would hit. So every LmdbDict and the verify store share one environment per path,
 * counted by reference. A different inode at the path (a compile renamed a new file in) gets an
 * environment of its own.
 */
interface SharedEnv {
  db: RootDatabase<Buffer, Buffer>;
  refs: number;
  ino: number;
  dev: number;
}
const envs = new Map<string, SharedEnv>();

export interface DatabaseHandle {
  readonly db: RootDatabase<Buffer, Buffer>;
  /** Drop this reference; the last one closes the environment. */
  release(): Promise<void>;
}

/** Open (or share) the LMDB environment of `path`; the caller has checked the file (checkDatabaseFile). */
export function acquireDatabase(path: string): DatabaseHandle {
  let env = envs.get(path);
  let st: { ino: number; dev: number } | undefined;
  try {
    st = statSync(path);
  } catch {
    st = undefined;
  }
  if (!env || !st || env.ino !== st.ino || env.dev !== st.dev) {
    let db: RootDatabase<Buffer, Buffer>;
    try {
      db = open<Buffer, Buffer>({ path, keyEncoding: 'binary', encoding: 'binary', noSubdir: true } as never) as unknown as RootDatabase<Buffer, Buffer>;
    } catch (err) {
      throw new Error(`open database ${path}: ${(err as Error).message}`);
    }
    const now = statSync(path);
    env = { db, refs: 0, ino: now.ino, dev: now.dev };
    envs.set(path, env);
  }
  env.refs++;
  const mine = env;
  let released = false;
  return {
    db: mine.db,
    release: async () => {
      if (released) return;
      released = true;
      if (--mine.refs > 0) return;
      if (envs.get(path) === mine) envs.delete(path);
      await mine.db.close();
    },
  };
}

export interface LmdbDictOptions {
  /** Create the file when missing (default true unless readOnly). */
  create?: boolean;
  /** How to repair the file when it is unusable (default: recompile it as lmdb:). */
  fix?: string;
}

/**
 * A string → string dictionary in one LMDB file, safe to share between processes. Writes are
 * synchronous single-key transactions; reads are synchronous and see the latest committed data.
 */
export class LmdbDict {
  /** Postfix's DICT_FLAG_TRY1NULL / TRY0NULL: which key forms to try; the first hit settles it. */
  private try1 = true;
  private try0 = true;

  private readonly db: RootDatabase<Buffer, Buffer>;

  private constructor(readonly path: string, private readonly handle: DatabaseHandle) {
    this.db = handle.db;
  }

  static open(path: string, opts: LmdbDictOptions = {}): LmdbDict {
    checkDatabaseFile(path, opts.create ?? true, opts.fix ?? recompileHint(path));
    return new LmdbDict(path, acquireDatabase(path));
  }

  get(key: string): string | undefined {
    try {
      return this.lookup(key);
    } catch (err) {
      throw this.failed(err);
    }
  }

  private lookup(key: string): string | undefined {
    // Postfix's dict_lmdb_lookup(): the key with its NUL, then without; a hit fixes the form.
    // The hot path allocates nothing per lookup: the key is written into one scratch buffer and
    // getBinaryFast returns a view of lmdb-js's shared buffer, decoded at once.
    const n = KEY_SCRATCH.write(key, 0, KEY_SCRATCH.length - 1, 'utf8');
    if (n >= KEY_SCRATCH.length - 2) return this.lookupSlow(key);
    KEY_SCRATCH[n] = 0;
    if (this.try1) {
      const v = this.db.getBinaryFast(KEY_SCRATCH.subarray(0, n + 1));
      if (v !== undefined) {
        this.try0 = false;
        return fromStored(v);
      }
    }
    if (this.try0 && n > 0) {
      const v = this.db.getBinaryFast(KEY_SCRATCH.subarray(0, n));
      if (v !== undefined) {
        this.try1 = false;
        return fromStored(v);
      }
    }
    return undefined;
  }

  /** Keys longer than the scratch buffer (never stored: longer than MAX_KEY_BYTES, but looked up). */
  private lookupSlow(key: string): string | undefined {
    const v = (this.try1 ? this.db.getBinaryFast(withNul(key)) : undefined) ?? (this.try0 ? this.db.getBinaryFast(Buffer.from(key)) : undefined);
    return v === undefined ? undefined : fromStored(v);
  }

  /** LMDB's own errors (MDB_CORRUPTED, …) do not name the file. */
  private failed(err: unknown): Error {
    const msg = (err as Error).message;
    return new Error(msg.startsWith(this.path) ? msg : `${this.path}: ${msg}`);
  }

  put(key: string, value: string): void {
    checkKey(this.path, key);
    this.db.putSync(withNul(key), withNul(value));
  }

  /** Put without the key check, inside transaction() (compileSource checked every key). */
  putChecked(key: string, value: string): void {
    this.db.putSync(withNul(key), withNul(value));
  }

  /** Delete one key (either stored form); true when it was present. */
  del(key: string): boolean {
    try {
      const a = this.db.removeSync(withNul(key));
      const b = key.length > 0 && this.db.removeSync(Buffer.from(key));
      return a || b;
    } catch (err) {
      throw this.failed(err);
    }
  }

  /** All elements in database (key) order. */
  *entries(): IterableIterator<[string, string]> {
    const it = this.db.getRange()[Symbol.iterator]();
    for (;;) {
      let r: IteratorResult<{ key: unknown; value: unknown }>;
      try {
        r = it.next();
      } catch (err) {
        throw this.failed(err);
      }
      if (r.done) return;
      yield [fromStored(r.value.key as Buffer), fromStored(r.value.value as Buffer)];
    }
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
    void this.handle.release();
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
  // Postfix's keys are C strings: a NUL would end the key early for Postfix's lookups.
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
  if (existsSync(target) && usableInPlace(target)) {
    const dict = LmdbDict.open(target);
    try {
      dict.transaction(() => {
        dict.clear();
        for (const k of keys) dict.putChecked(k, map.get(k)!);
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
      for (const k of keys) dict.putChecked(k, map.get(k)!);
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

/**
 * Whether compileSource may update `target` in place. A damaged, empty or foreign file is
 * replaced (nobody can have it open: every open checks the file first) — except an LMDB 0.9 file
 * while our binding writes 1.0: that file is Postfix's format, and overwriting it would make it
 * unreadable to Postfix, so the error that says how to build the binding stands.
 */
function usableInPlace(target: string): boolean {
  try {
    checkDatabaseFile(target, false, recompileHint(target));
    return true;
  } catch (err) {
    if (!(err instanceof TableFileError)) throw err;
    if (err.info.kind === 'lmdb' && err.info.format === '0.9') throw err;
    return false;
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
