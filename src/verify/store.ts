// The verify cache's stores on this machine: memory only (lost at exit, as Postfix's internal
// table) and an LMDB file at PATH.lmdb (the same file `backstop postmap -s/-q/-d btree:PATH`
// reads, created on first use, surviving restarts); the VerifyStore contract every store keeps,
// Redis's too (redis.ts). open.ts picks one by address_verify_map.
// Every store keeps Postfix's key/value strings; the service owns the meaning. Trusts LMDB for
// atomic, durable commits.

import { closeSync, fstatSync, mkdirSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { open, type RootDatabase } from 'lmdb';

export interface VerifyStore {
  /** The map as configured (log lines: `cache btree:/x full cleanup: …`). */
  readonly name: string;
  /** True when other processes or nodes may write entries (waiters then re-read the store). */
  readonly shared: boolean;
  /** Synchronous where the store can be (memory, LMDB): the cache-hit path pays no I/O wait. */
  get(key: string): string | undefined | Promise<string | undefined>;
  /** ttlSec: when the entry can be forgotten (Redis TTL); undefined = keep. */
  put(key: string, value: string, ttlSec?: number): void | Promise<void>;
  del(key: string): void | Promise<void>;
  entries(): AsyncIterable<[string, string]> | Iterable<[string, string]>;
  close(): Promise<void>;
}

export class MemoryStore implements VerifyStore {
  readonly name: string;
  readonly shared = false;
  private readonly map = new Map<string, string>();
  constructor(name = 'internal:verify') {
    this.name = name;
  }
  get(key: string): string | undefined {
    return this.map.get(key);
  }
  put(key: string, value: string): void {
    this.map.set(key, value);
  }
  del(key: string): void {
    this.map.delete(key);
  }
  entries(): Iterable<[string, string]> {
    return [...this.map.entries()];
  }
  async close(): Promise<void> {}
}

/**
 * LMDB-backed cache. Writes go through lmdb-js's asynchronous batched commits (many updates per
 * fsync'd transaction: a probe storm does not pay one fsync per address); until a write is
 * committed, this process reads it from `unsettled`, so it always sees its own writes. Other
 * processes (postmap) see committed data, and their deletes are seen here at once.
 */
export class LmdbStore implements VerifyStore {
  readonly shared = false;
  private readonly unsettled = new Map<string, string | null>();
  private constructor(readonly name: string, readonly path: string, private readonly db: RootDatabase<string, string>) {}

  static open(name: string, path: string): LmdbStore {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      checkLmdbFile(path);
      const db = open<string, string>({ path, encoding: 'string', noSubdir: true } as never);
      return new LmdbStore(name, path, db as unknown as RootDatabase<string, string>);
    } catch (err) {
      throw new Error(`open database ${path}: ${(err as Error).message}`);
    }
  }

  get(key: string): string | undefined {
    const u = this.unsettled.get(key);
    if (u !== undefined) return u === null ? undefined : u;
    return this.db.get(key);
  }

  private track(key: string, v: string | null, p: Promise<unknown>): Promise<void> {
    this.unsettled.set(key, v);
    return p.then(
      () => {
        if (this.unsettled.get(key) === v) this.unsettled.delete(key);
      },
      (err: Error) => {
        if (this.unsettled.get(key) === v) this.unsettled.delete(key);
        throw new Error(`${this.path}: ${err.message}`);
      },
    );
  }

  put(key: string, value: string): Promise<void> {
    return this.track(key, value, this.db.put(key, value));
  }

  del(key: string): Promise<void> {
    return this.track(key, null, this.db.remove(key));
  }

  *entries(): Iterable<[string, string]> {
    for (const { key, value } of this.db.getRange()) {
      const u = this.unsettled.get(key as string);
      if (u === null) continue;
      yield [key as string, u ?? (value as string)];
    }
  }

  async close(): Promise<void> {
    await this.db.flushed;
    await this.db.close();
  }
}

/**
 * LMDB crashes the process (SIGSEGV) when it maps a file that is not an LMDB database, so an
 * existing file is checked first: its meta page must carry LMDB's magic number (0xBEEFC0DE).
 * A missing or empty file is fine (LMDB creates it).
 */
function checkLmdbFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new Error('is a directory, not an LMDB database file');
    if (st.size === 0) return;
    const head = Buffer.alloc(32);
    const n = readSync(fd, head, 0, 32, 0);
    const magic = (off: number) => n >= off + 4 && head.readUInt32LE(off) === 0xbeefc0de;
    if (!magic(16) && !magic(24)) throw new Error('not an LMDB database file (bad magic number)');
  } finally {
    closeSync(fd);
  }
}
