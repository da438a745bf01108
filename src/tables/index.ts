// Lookup tables: one opener per type in a registry (openTable), TableList for maps searches,
// the writable LMDB dictionary, and postmap's compiler. See docs/tables.md.
export type { LookupResult, LookupTable, OpenTableOptions, TableOpener } from './types.js';
export { openTable, parseTableRef, isKnownTableType, TABLE_TYPES, COMPILED_TABLE_TYPES } from './registry.js';
export { TableList, type MapsHit } from './maps.js';
export { LmdbDict, compileSource, COMPILED_SUFFIX, MAX_KEY_BYTES, lmdbFormat, checkDatabaseFile, acquireDatabase, withNul, fromStored, type DatabaseHandle, type LmdbDictOptions, type CompileResult } from './lmdb.js';
export { resolveTablePath, openCompiledDict } from './openers.js';
export { onTableChange } from './reload.js';
export { inspectFile, classifyBytes, describe, TableFileError, type FileInfo, type LmdbFormat } from './fileinfo.js';
export { CidrMatcher, parseAddr } from './cidr.js';
export { RegexpMatcher, type RegexpDialect } from './regexp.js';
