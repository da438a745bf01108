// Where the verify cache lives, chosen by address_verify_map: empty → memory only;
// btree:/hash:/lmdb:PATH → an LMDB file (store.ts); redis:CONFIG_FILE → a Redis server shared by
// several nodes (redis.ts). Errors name the parameter, the value and what is expected.

import { parseTableRef, resolveTablePath, COMPILED_SUFFIX } from '../tables/index.js';
import { LmdbStore, MemoryStore, LMDB_CACHE_FIX, type VerifyStore } from './store.js';
import { checkDatabaseFile } from '../tables/index.js';
import { openRedisStore } from './redis.js';

export interface OpenStoreOptions {
  /** Relative paths resolve against this directory (the config directory). */
  baseDir?: string;
}

/** Open the store that address_verify_map names. Errors name the map and what is expected. */
export async function openVerifyStore(ref: string, opts: OpenStoreOptions = {}): Promise<VerifyStore> {
  const spec = ref.trim();
  if (spec === '') return new MemoryStore();
  if (!spec.includes(':')) throw new Error(`address_verify_map: "${spec}": expected type:name (btree:, lmdb:, hash: or redis:), or empty for a memory-only cache`);
  const { type, name } = parseTableRef(spec);
  if (name.trim() === '') throw new Error(`address_verify_map: "${spec}": missing file name after "${type}:"`);
  switch (type) {
    case 'btree':
    case 'hash':
    case 'lmdb':
      return LmdbStore.open(spec, resolveTablePath(name, opts) + COMPILED_SUFFIX);
    case 'redis':
      return openRedisStore(spec, resolveTablePath(name, opts));
    default:
      throw new Error(`address_verify_map: unsupported map type "${type}" in "${spec}" (use btree:, lmdb:, hash: or redis:, or leave it empty)`);
  }
}

/**
 * `backstop check`: the verify cache's LMDB file, looked at without opening it (a missing or
 * empty file is fine: the server creates it). Throws what LmdbStore.open would throw (without
 * its "open database " prefix).
 */
export function checkVerifyStoreFile(ref: string, opts: OpenStoreOptions = {}): void {
  const spec = ref.trim();
  if (!spec.includes(':')) return;
  const { type, name } = parseTableRef(spec);
  if (!['btree', 'hash', 'lmdb'].includes(type) || name.trim() === '') return;
  checkDatabaseFile(resolveTablePath(name, opts) + COMPILED_SUFFIX, true, LMDB_CACHE_FIX);
}
