// openTable(): parse `type:name` and hand it to the type's opener from TABLE_OPENERS (data, not an
// if-chain). Unknown types fail here, at configuration load, never mid-session.

import type { LookupTable, OpenTableOptions } from './types.js';
import { TABLE_OPENERS } from './openers.js';

/** Every table type Backstop knows (the config validator rejects others). */
export const TABLE_TYPES: readonly string[] = Object.freeze(Object.keys(TABLE_OPENERS));

/** Types that `postmap type:name` compiles into an LMDB file. */
export const COMPILED_TABLE_TYPES: readonly string[] = Object.freeze(Object.keys(TABLE_OPENERS).filter((t) => TABLE_OPENERS[t].compiled));

export function isKnownTableType(type: string): boolean {
  return Object.prototype.hasOwnProperty.call(TABLE_OPENERS, type);
}

/** Split `type:name`; the type is everything before the first colon. */
export function parseTableRef(ref: string): { type: string; name: string } {
  const colon = ref.indexOf(':');
  if (colon <= 0) throw new Error(`table "${ref}": need type:name (known types: ${TABLE_TYPES.join(', ')})`);
  return { type: ref.slice(0, colon), name: ref.slice(colon + 1) };
}

export function openTable(ref: string, opts: OpenTableOptions = {}): LookupTable {
  const { type, name } = parseTableRef(ref.trim());
  if (!isKnownTableType(type)) throw new Error(`unsupported dictionary type: ${type} (in "${ref}"; known types: ${TABLE_TYPES.join(', ')})`);
  if (name.trim() === '') throw new Error(`table "${ref}": missing table name after "${type}:"`);
  return TABLE_OPENERS[type].open(type, name, ref.trim(), opts);
}
