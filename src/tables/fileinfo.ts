// What a table or cache file is, found by reading its first pages in JavaScript before any native
// code maps it. LMDB's C code trusts the file it maps: a file of random bytes, a truncated one or
// one in the other LMDB data format can crash the whole process (SIGSEGV/SIGBUS) instead of
// failing one open. Postfix's own dict_lmdb has the same exposure; we do not want a backup MX to
// die, without a word, because of one table file. Trusts nothing in the file; reads at most the
// two meta pages and every page of the two trees (walkTree).
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
const P_OVERFLOW = 0x04;
const F_BIGDATA = 0x01;
const F_SUBDATA = 0x02;
const F_DUPDATA = 0x04;
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
    const db = name === 'main' ? m.main : m.free;
    // Postfix's dict_lmdb and Backstop open the main database with no flags (no DUPSORT, no
    // INTEGERKEY): any other flag would make LMDB read keys and values as something else.
    if (name === 'main' && db.flags !== 0) return { kind: 'damaged', format, what: `the main database has flags 0x${db.flags.toString(16)} (not a Postfix table)` };
    const walked = walkTree(read, hdr, format === '1.0' ? hdr : 0, ps, m.lastPage, root, name === 'main');
    if (typeof walked === 'string') return { kind: 'damaged', format, what: `the ${name} tree: ${walked}` };
    if (walked !== db.depth) return { kind: 'damaged', format, what: `the ${name} tree is ${walked} levels deep, its meta page says ${db.depth}` };
  }
  return { kind: 'lmdb', format, pageSize: ps, entries: m.entries, txnId: m.txnId };
}

/**
 * Check every page of one B-tree the way LMDB will use it: page numbers inside the file, each
 * page visited once, page bounds and every node's key and data inside its page, overflow pages
 * where the node says. A file that passes can be read without LMDB touching bytes outside the
 * pages it was told about. Costs one read of each page of the tree (a table is checked when it is
 * opened, not at each lookup). `base` is LMDB's PAGEBASE. Returns what is wrong, or undefined.
 */
function walkTree(read: (offset: number, length: number) => Buffer, hdr: number, base: number, ps: number, lastPage: bigint, root: bigint, main: boolean): string | number {
  const seen = new Set<number>();
  let leafDepth = 0;
  const stack: { pgno: bigint; depth: number }[] = [{ pgno: root, depth: 1 }];
  while (stack.length > 0) {
    const { pgno, depth } = stack.pop()!;
    if (pgno < 2n || pgno > lastPage) return `page ${pgno} is outside the file`;
    // LMDB's cursor stack holds 32 pages (CURSOR_STACK).
    if (depth > 32) return 'the tree is deeper than 32 levels';
    const n = Number(pgno);
    if (seen.has(n)) return `page ${pgno} is reached twice`;
    seen.add(n);
    const page = read(n * ps, ps);
    if (page.length < ps) return `page ${pgno} is cut short`;
    if (page.readBigUInt64LE(0) !== pgno) return `page ${pgno} is not a tree page (it says it is page ${page.readBigUInt64LE(0)})`;
    const flags = page.readUInt16LE(hdr - 6);
    // 1.0 counts bounds and node offsets from the end of the header (PAGEBASE), 0.9 from the page start.
    const lower = page.readUInt16LE(hdr - 4) + base;
    const upper = page.readUInt16LE(hdr - 2) + base;
    const branch = (flags & P_BRANCH) !== 0;
    if ((flags & ~(P_BRANCH | P_LEAF)) !== 0 || branch === ((flags & P_LEAF) !== 0)) return `page ${pgno} is not a tree page (flags 0x${flags.toString(16)})`;
    if (lower < hdr || (lower - hdr) % 2 !== 0 || upper > ps || lower > upper) return `page ${pgno} has impossible bounds (${lower}, ${upper})`;
    const count = (lower - hdr) / 2;
    if (branch && count === 0) return `branch page ${pgno} is empty`;
    if (!branch) {
      if (leafDepth !== 0 && leafDepth !== depth) return `leaf page ${pgno} at depth ${depth}, others at ${leafDepth}`;
      leafDepth = depth;
    }
    for (let i = 0; i < count; i++) {
      const off = page.readUInt16LE(hdr + 2 * i) + base;
      if (off < upper || off + 8 > ps) return `page ${pgno}, node ${i}: offset ${off} outside the page's node area`;
      const lo = page.readUInt16LE(off);
      const hi = page.readUInt16LE(off + 2);
      const nflags = page.readUInt16LE(off + 4);
      const ksize = page.readUInt16LE(off + 6);
      const data = off + 8 + ksize;
      if (data > ps) return `page ${pgno}, node ${i}: its key runs past the page`;
      if (branch) {
        stack.push({ pgno: BigInt(lo) | (BigInt(hi) << 16n) | (BigInt(nflags) << 32n), depth: depth + 1 });
        continue;
      }
      const dsize = lo | (hi << 16);
      // Postfix and Backstop keep one value per key: no sub-databases, no duplicates.
      if (main && (nflags & (F_SUBDATA | F_DUPDATA)) !== 0) return `page ${pgno}, node ${i}: sub-database or duplicate data (not a Postfix table)`;
      // Free-page records: key = a txnid, data = a page list (count, then that many page numbers).
      if (!main && ksize !== 8) return `page ${pgno}, node ${i}: a free-page record with a ${ksize}-byte key`;
      if ((nflags & F_BIGDATA) === 0) {
        if (data + dsize > ps) return `page ${pgno}, node ${i}: its data runs past the page`;
        if (!main && (dsize < 8 || (page.readBigUInt64LE(data) + 1n) * 8n > BigInt(dsize))) return `page ${pgno}, node ${i}: a free-page list longer than its record`;
        continue;
      }
      if (data + 8 > ps) return `page ${pgno}, node ${i}: its overflow page number runs past the page`;
      const ov = page.readBigUInt64LE(data);
      const pages = Math.floor((hdr - 1 + dsize) / ps) + 1;
      if (ov < 2n || ov + BigInt(pages) - 1n > lastPage) return `page ${pgno}, node ${i}: overflow pages ${ov}+${pages} outside the file`;
      const oh = read(Number(ov) * ps, hdr);
      if (oh.length < hdr || oh.readBigUInt64LE(0) !== ov || (oh.readUInt16LE(hdr - 6) & P_OVERFLOW) === 0 || oh.readUInt32LE(hdr - 4) < pages) {
        return `page ${pgno}, node ${i}: page ${ov} is not its overflow page`;
      }
      if (!main) {
        const list = read(Number(ov) * ps + hdr, 8);
        if (dsize < 8 || list.length < 8 || (list.readBigUInt64LE(0) + 1n) * 8n > BigInt(dsize)) return `page ${pgno}, node ${i}: a free-page list longer than its record`;
      }
    }
  }
  return leafDepth;
}

interface DbRecord {
  flags: number;
  depth: number;
}

interface Meta {
  pageSize: number;
  free: DbRecord;
  main: DbRecord;
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
    // The free DB's flags field holds the environment's flags; only its depth is the tree's.
    free: { flags: 0, depth: b.readUInt16LE(dbs + 6) },
    main: { flags: b.readUInt16LE(dbs + 48 + 4), depth: b.readUInt16LE(dbs + 48 + 6) },
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
