// The verify cache's stores on this machine: memory only (lost at exit, as Postfix's internal
// table) and an LMDB file at PATH.lmdb (the same file `backstop postmap -s/-q/-d btree:PATH`
// reads, created on first use, surviving restarts); the VerifyStore contract every store keeps,
// Redis's too (redis.ts). open.ts picks one by address_verify_map.
// Every store keeps Postfix's key/value strings; the service owns the meaning. The LMDB file is in
// Postfix's format (tables/lmdb.ts: data format and NUL-terminated keys and values), so a cache
// that Postfix's verify(8) wrote is read as it is. Trusts LMDB for atomic, durable commits, and
// tables/fileinfo.ts to refuse a file LMDB would crash on.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { RootDatabase } from 'lmdb';
import { acquireDatabase, checkDatabaseFile, withNul, fromStored, type DatabaseHandle } from '../tables/index.js';

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

/** How to repair an unusable verify cache file (the end of the error message). */
export const LMDB_CACHE_FIX = 'it is only a cache: move it away and Backstop starts a new one';

/**
 * LMDB-backed cache. Writes go through lmdb-js's asynchronous batched commits (many updates per
 * fsync'd transaction: a probe storm does not pay one fsync per address); until a write is
 * committed, this process reads it from `unsettled`, so it always sees its own writes. Other
 * processes (postmap) see committed data, and their deletes are seen here at once.
 */
export class LmdbStore implements VerifyStore {
  readonly shared = false;
  private readonly unsettled = new Map<string, string | null>();
  private readonly db: RootDatabase<Buffer, Buffer>;
  private constructor(readonly name: string, readonly path: string, private readonly handle: DatabaseHandle) {
    this.db = handle.db;
  }

  static open(name: string, path: string): LmdbStore {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new Error(`open database ${path}: ${(err as Error).message}`);
    }
    // A missing or empty file is created; anything else must be a database LMDB can map safely.
    try {
      checkDatabaseFile(path, true, LMDB_CACHE_FIX);
    } catch (err) {
      const msg = (err as Error).message;
      throw new Error(msg.startsWith('open database ') ? msg : `open database ${msg}`);
    }
    // Shared with any table or postmap on the same file in this process (see acquireDatabase).
    return new LmdbStore(name, path, acquireDatabase(path));
  }

  get(key: string): string | undefined {
    const u = this.unsettled.get(key);
    if (u !== undefined) return u === null ? undefined : u;
    // Postfix stores the key's NUL (and so do we); a cache written with `-n` has none.
    const v = this.db.get(withNul(key)) ?? (key.length > 0 ? this.db.get(Buffer.from(key)) : undefined);
    return v === undefined ? undefined : fromStored(v);
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
    return this.track(key, value, this.db.put(withNul(key), withNul(value)));
  }

  del(key: string): Promise<void> {
    const bare = key.length > 0 ? this.db.remove(Buffer.from(key)) : Promise.resolve(true);
    return this.track(key, null, Promise.all([this.db.remove(withNul(key)), bare]));
  }

  *entries(): Iterable<[string, string]> {
    for (const { key: k, value } of this.db.getRange()) {
      const key = fromStored(k as Buffer);
      const u = this.unsettled.get(key);
      if (u === null) continue;
      yield [key, u ?? fromStored(value as Buffer)];
    }
  }

  async close(): Promise<void> {
    await this.db.flushed;
    await this.handle.release();
  }
}
