// What a table or cache file is, found by reading its first pages in JavaScript before any native
// code maps it. LMDB's C code trusts the file it maps: a file of random bytes, a truncated one or
// one in the other LMDB data format can crash the whole process (SIGSEGV/SIGBUS) instead of
// failing one open. Postfix's own dict_lmdb has the same exposure; we do not want a backup MX to
// die, without a word, because of one table file. Trusts nothing in the file; reads at most the
// two meta pages and the main tree's root page header.
//
// The formats recognized (offsets for 64-bit little-endian builds, the only ones we run on):
// - LMDB 0.9 (Postfix, Debian's liblmdb, data version 1): 16-byte page header, meta at 16.
// - LMDB 1.0 (the `lmdb` npm package's default build, data version 2): 24-byte page header
//   (adds the page's txnid), meta at 24.
//   A meta is: magic 0xBEEFC0DE, version, address, mapsize, two MDB_db records of 48 bytes (the
//   free-page DB, whose first field is the page size, and the main DB), last page, txnid.
// - Berkeley DB (Postfix's hash:/btree: `.db`): magic 0x061561 (hash) or 0x053162 (btree) at
//   offset 12 (DB 2 and later) or 0 (DB 1.85), in either byte order.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export const LMDB_MAGIC = 0xbeefc0de;
const BDB_HASH_MAGIC = 0x061561;
const BDB_BTREE_MAGIC = 0x053162;
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_INVALID = 0xffffffffffffffffn;

/** LMDB data formats: '0.9' is data version 1 (Postfix, liblmdb), '1.0' is data version 2. */
export type LmdbFormat = '0.9' | '1.0';

export type FileInfo =
  | { kind: 'missing' }
  | { kind: 'directory' }
  | { kind: 'empty' }
  | { kind: 'lmdb'; format: LmdbFormat; pageSize: number; entries: bigint; txnId: bigint }
  | { kind: 'berkeley-db'; access: 'hash' | 'btree' }
  /** An LMDB file that LMDB's code must not map: `what` says what is wrong. */
  | { kind: 'damaged'; format?: LmdbFormat; what: string }
  | { kind: 'unknown'; size: number };

/** Pure: what `head` (the file's first bytes, up to 2 meta pages + root header) of a file of `size` bytes is. */
export function classifyBytes(size: number, read: (offset: number, length: number) => Buffer): FileInfo {
  if (size === 0) return { kind: 'empty' };
  const first = read(0, 64);
  const bdb = berkeleyDbAccess(first);
  if (bdb) return { kind: 'berkeley-db', access: bdb };
  const format: LmdbFormat | undefined = u32(first, 16) === LMDB_MAGIC ? '0.9' : u32(first, 24) === LMDB_MAGIC ? '1.0' : undefined;
  if (!format) return size < 32 ? { kind: 'damaged', what: `too short for an LMDB database (${size} bytes)` } : { kind: 'unknown', size };
  const hdr = format === '0.9' ? 16 : 24;
  if (size < hdr + 136) return { kind: 'damaged', format, what: `truncated: ${size} bytes, shorter than one meta page` };
  const meta0 = readMeta(read(0, hdr + 136), hdr, format);
  if (typeof meta0 === 'string') return { kind: 'damaged', format, what: meta0 };
  const ps = meta0.pageSize;
  if (size < 2 * ps) return { kind: 'damaged', format, what: `truncated: ${size} bytes, shorter than its two ${ps}-byte meta pages` };
  const meta1 = readMeta(read(ps, hdr + 136), hdr, format);
  if (typeof meta1 === 'string') return { kind: 'damaged', format, what: `second meta page: ${meta1}` };
  if (meta1.pageSize !== ps) return { kind: 'damaged', format, what: `the two meta pages disagree on the page size (${ps}, ${meta1.pageSize})` };
  // LMDB uses the meta page with the higher transaction id; check the one it would use.
  const m = meta1.txnId > meta0.txnId ? meta1 : meta0;
  const pages = BigInt(size) / BigInt(ps);
  if (m.lastPage + 1n > pages) return { kind: 'damaged', format, what: `truncated: ${size} bytes, its meta page says ${(m.lastPage + 1n) * BigInt(ps)}` };
  for (const [name, root] of [['free-page', m.freeRoot], ['main', m.mainRoot]] as const) {
    if (root === P_INVALID) continue;
    if (root < 2n || root > m.lastPage) return { kind: 'damaged', format, what: `the ${name} tree's root page ${root} is outside the file` };
    const page = read(Number(root) * ps, hdr);
    const pgno = page.length >= 8 ? page.readBigUInt64LE(0) : -1n;
    const flags = page.length >= hdr ? page.readUInt16LE(hdr - 6) : 0;
    if (pgno !== root || (flags & (P_BRANCH | P_LEAF)) === 0) return { kind: 'damaged', format, what: `the ${name} tree's root page ${root} is not a tree page` };
  }
  return { kind: 'lmdb', format, pageSize: ps, entries: m.entries, txnId: m.txnId };
}

interface Meta {
  pageSize: number;
  freeRoot: bigint;
  mainRoot: bigint;
  entries: bigint;
  lastPage: bigint;
  txnId: bigint;
}

function readMeta(b: Buffer, hdr: number, format: LmdbFormat): Meta | string {
  if (b.length < hdr + 136) return 'truncated inside a meta page';
  if (u32(b, hdr) !== LMDB_MAGIC) return 'no LMDB magic number';
  const version = u32(b, hdr + 4)! & 0xffff;
  const want = format === '0.9' ? 1 : 2;
  if (version !== want) return `unknown LMDB data version ${version}`;
  const ps = b.readUInt32LE(hdr + 24);
  if (ps < 512 || ps > 65536 || (ps & (ps - 1)) !== 0) return `impossible page size ${ps}`;
  // MDB_db: pad/psize(4) flags(2) depth(2) branch leaf overflow entries root (8 each) = 48 bytes.
  const dbs = hdr + 24;
  return {
    pageSize: ps,
    freeRoot: b.readBigUInt64LE(dbs + 40),
    entries: b.readBigUInt64LE(dbs + 48 + 32),
    mainRoot: b.readBigUInt64LE(dbs + 48 + 40),
    lastPage: b.readBigUInt64LE(dbs + 96),
    txnId: b.readBigUInt64LE(dbs + 104),
  };
}

function u32(b: Buffer, off: number): number | undefined {
  return b.length >= off + 4 ? b.readUInt32LE(off) : undefined;
}

function berkeleyDbAccess(b: Buffer): 'hash' | 'btree' | undefined {
  for (const off of [12, 0]) {
    if (b.length < off + 4) continue;
    for (const v of [b.readUInt32LE(off), b.readUInt32BE(off)]) {
      if (v === BDB_HASH_MAGIC) return 'hash';
      if (v === BDB_BTREE_MAGIC) return 'btree';
    }
  }
  return undefined;
}

/** Look at the file at `path` (never throws for what the file holds; only for unreadable ones). */
export function inspectFile(path: string): FileInfo {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    throw new Error(`open database ${path}: ${code === 'EACCES' ? 'Permission denied' : (err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) return { kind: 'directory' };
    return classifyBytes(st.size, (offset, length) => {
      const b = Buffer.alloc(length);
      const n = offset < st.size ? readSync(fd, b, 0, length, offset) : 0;
      return b.subarray(0, n);
    });
  } finally {
    closeSync(fd);
  }
}

/** One phrase for what the file is ("a Berkeley DB hash file (Postfix's hash: format)"). */
export function describe(info: FileInfo): string {
  switch (info.kind) {
    case 'missing':
      return 'no such file';
    case 'directory':
      return 'a directory, not a database file';
    case 'empty':
      return 'an empty file (zero bytes), not an LMDB database';
    case 'lmdb':
      return info.format === '0.9' ? 'an LMDB database in the 0.9 data format (Postfix, liblmdb)' : "an LMDB database in the 1.0 data format (the lmdb npm package's default build; Postfix cannot read it)";
    case 'berkeley-db':
      return `a Berkeley DB ${info.access} file (Postfix's ${info.access}: format), not an LMDB database`;
    case 'damaged':
      return `a damaged ${info.format ? `LMDB ${info.format}-format ` : ''}database (${info.what})`;
    case 'unknown':
      return `not an LMDB database (no LMDB or Berkeley DB magic number in its first ${Math.min(info.size, 64)} bytes)`;
  }
}

/** Why an LMDB file cannot be opened here and how to fix it, thrown before the native open. */
export class TableFileError extends Error {
  constructor(readonly path: string, readonly info: FileInfo, fix: string) {
    super(`${path}: ${describe(info)}; ${fix}`);
  }
}

export interface CheckOptions {
  /** The LMDB data format this process's binding reads and writes. */
  format: LmdbFormat;
  /** Missing or empty is fine (the caller creates the database). */
  mayCreate: boolean;
  /** What repairs the file: "rebuild it from its text source with: backstop postmap hash:/x". */
  fix: string;
}

/**
 * Throw a TableFileError unless `path` is an LMDB database our binding can map safely (or,
 * with mayCreate, missing or empty). Returns what the file is.
 */
export function checkLmdbFile(path: string, opts: CheckOptions): FileInfo {
  const info = inspectFile(path);
  if (info.kind === 'missing') {
    if (opts.mayCreate) return info;
    throw new Error(`open database ${path}: No such file or directory`);
  }
  if (info.kind === 'empty' && opts.mayCreate) return info;
  if (info.kind === 'lmdb' && info.format === opts.format) return info;
  if (info.kind === 'lmdb' && info.format === '0.9') {
    throw new TableFileError(path, info, `this Backstop's lmdb binding was built for the 1.0 format: build it for Postfix's format with "npm run build:lmdb" in Backstop's directory (needs gcc, g++, make, python3), or ${opts.fix}`);
  }
  throw new TableFileError(path, info, opts.fix);
}
