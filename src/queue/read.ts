// Reading queue files back. readQueueHeadSync reads the head (envelope), the END record and the
// state journal without the content: used by start-up recovery (which must not read message
// bodies), by load() and by the listing commands. Synchronous on purpose: a head is one or two
// small reads, and the start-up scan of 100,000 files is several times faster without a
// thread-pool round trip per call. readContent streams the content for delivery and checks it
// against the END record's checksum; its reads are synchronous too — a queue file being
// delivered was written or scanned moments ago and is in the page cache, so each read is a copy
// of at most 256 KB, where an asynchronous read costs two thread wake-ups (five per 1 KB message,
// the largest share of the queue manager's CPU in a drain: bench/qmgr-drain.ts BENCH_PROFILE).
// A small file that the head read took whole is not read again: readContent parses the same
// bytes (Queue.load keeps them for the delivery that follows).
// Trusts nothing in the file: a bad one is a QueueFileError.

import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { parseHead, parseTail, QueueFileError, type QueueFileHead } from './file.js';
import { REC, readRecord } from './records.js';

/** Bytes a first read asks for; a file shorter than this is read whole by it. */
export const FIRST_READ = 16384;
/** Bytes read per block while streaming content. */
const BLOCK_BYTES = 256 * 1024;
/** VERSION + SIZE records: the END checksum covers what follows them. */
const CRC_START = 1 + 1 + 16 + 1 + 1 + 63;

/** A file's envelope and offsets without its journal's states; `whole`: see readQueueHeadSync. */
type EnvelopeHead = Omit<QueueFileHead, 'states' | 'retry' | 'journalOffset' | 'validLength' | 'torn'> & { fileSize: number; whole?: Buffer };

/**
 * Read one queue file's head and journal. Throws QueueFileError for a bad file, ErrnoException
 * for I/O. `keepWhole`: when the first read held the whole file, return its bytes as `whole` (a
 * view of the read buffer), so that the content can be read from them (readContent) without
 * reading the file again.
 */
export function readQueueHeadSync(path: string, keepWhole = false): QueueFileHead & { fileSize: number; whole?: Buffer } {
  return readHeadSync(path, keepWhole, true) as QueueFileHead & { fileSize: number; whole?: Buffer };
}

/**
 * The envelope and offsets of one queue file without its journal (no recipient or retry states):
 * for the queue manager, whose index already holds each recipient's status and the retry state,
 * kept current by every update it appended. The END record must be there; the content read
 * checks it and the checksum.
 */
export function readEnvelopeSync(path: string, keepWhole = false, read?: Buffer): EnvelopeHead {
  return readHeadSync(path, keepWhole, false, read);
}

/**
 * `read`: the first FIRST_READ bytes of the file, read already (by the helper thread that moved it);
 * the file is opened only when the head is longer than that.
 */
function readHeadSync(path: string, keepWhole: boolean, journal: boolean, read?: Buffer): EnvelopeHead & Partial<QueueFileHead> {
  if (read && read.length < FIRST_READ) {
    // The whole file is in hand: no system call at all.
    return headOf(-1, read, read.length, FIRST_READ, keepWhole, journal);
  }
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(FIRST_READ);
    return headOf(fd, buf, readSync(fd, buf, 0, buf.length, 0), buf.length, keepWhole, journal);
  } finally {
    closeSync(fd);
  }
}

/**
 * Parses a head from the first `got` bytes in `buf` (a read of `capacity` bytes: fewer means the
 * file ended); reads more from `fd` when the file is longer.
 */
function headOf(fd: number, buf: Buffer, got: number, capacity: number, keepWhole: boolean, journal: boolean): EnvelopeHead & Partial<QueueFileHead> {
  let fileSize = got < capacity ? got : -1;
  let head: ReturnType<typeof parseHead>;
  for (;;) {
    try {
      head = parseHead(buf.subarray(0, got));
      break;
    } catch (err) {
      // A head larger than the first read (many recipients): read more, unless the file ended.
      if (!(err instanceof QueueFileError) || fileSize >= 0 || !/truncated/.test(err.message)) throw err;
      const bigger = Buffer.allocUnsafe(buf.length * 4);
      buf.copy(bigger, 0, 0, got);
      const more = readSync(fd, bigger, got, bigger.length - got, got);
      got += more;
      if (got < bigger.length) fileSize = got;
      buf = bigger;
    }
  }
  if (fileSize < 0) fileSize = fstatSync(fd).size;
  if (head.endOffset >= fileSize) throw new QueueFileError('file is truncated: no END record');
  const whole = keepWhole && fileSize <= got ? { whole: buf.subarray(0, fileSize) } : {};
  if (!journal) {
    return { envelope: head.env, messageSize: head.messageSize, messageId: head.messageId, contentOffset: head.contentOffset, endOffset: head.endOffset, fileSize, ...whole };
  }
  let tail: Buffer;
  if (fileSize <= got) {
    tail = buf.subarray(head.endOffset, fileSize);
  } else {
    tail = Buffer.allocUnsafe(fileSize - head.endOffset);
    let off = 0;
    while (off < tail.length) {
      const n = readSync(fd, tail, off, tail.length - off, head.endOffset + off);
      if (n === 0) break;
      off += n;
    }
    tail = tail.subarray(0, off);
  }
  const t = parseTail(tail, head.endOffset, head.nrcpt);
  const end = readRecord(tail, head.endOffset, head.endOffset);
  return {
    envelope: head.env,
    states: t.states,
    retry: t.retry,
    messageSize: head.messageSize,
    messageId: head.messageId,
    contentOffset: head.contentOffset,
    endOffset: head.endOffset,
    journalOffset: end.ok ? end.rec.end : head.endOffset,
    validLength: t.validLength,
    torn: t.torn,
    fileSize,
    ...whole,
  };
}

/** Reads `len` bytes at file position `pos` into `buf` at `off`; returns how many it read (0 at the end). */
type PRead = (buf: Buffer, off: number, len: number, pos: number) => number;

/**
 * Stream the content of the queue file at `path`, verifying records and the END checksum. With
 * `whole` (the file's bytes, from readQueueHeadSync), the file is not read again.
 */
export async function* readContent(path: string, whole?: { bytes: Buffer; contentOffset: number; endOffset: number }): AsyncGenerator<Buffer> {
  // The walk itself is a plain generator (every read is synchronous): one asynchronous step per
  // chunk for the consumer, not one per level of nested async generators.
  if (whole) {
    // The head was parsed from these very bytes: its offsets stand, only the content is walked.
    const b = whole.bytes;
    for (const chunk of walkContent((buf, off, len, pos) => (pos >= b.length ? 0 : b.copy(buf, off, pos, Math.min(b.length, pos + len))), b, whole)) yield chunk;
    return;
  }
  const fd = openSync(path, 'r');
  try {
    for (const chunk of contentOf((buf, off, len, pos) => readSync(fd, buf, off, len, pos))) yield chunk;
  } finally {
    closeSync(fd);
  }
}

function* contentOf(readAt: PRead): Generator<Buffer> {
  const first = Buffer.allocUnsafe(16384);
  const { headBuf, head } = readHeadOffsets(first.subarray(0, readAt(first, 0, first.length, 0)), readAt);
  yield* walkContent(readAt, headBuf, head);
}

/** Parses the head from the first bytes read, reading more while it is longer; the bytes and its offsets. */
function readHeadOffsets(first: Buffer, readAt: PRead): { headBuf: Buffer; head: { contentOffset: number; endOffset: number } } {
  let headBuf = first;
  for (;;) {
    try {
      return { headBuf, head: parseHead(headBuf) };
    } catch (err) {
      if (!(err instanceof QueueFileError) || !/truncated/.test(err.message)) throw err;
      const bigger = Buffer.allocUnsafe(headBuf.length * 4);
      headBuf.copy(bigger);
      const more = readAt(bigger, headBuf.length, bigger.length - headBuf.length, headBuf.length);
      if (more === 0) throw err;
      headBuf = bigger.subarray(0, headBuf.length + more);
    }
  }
}

/** The content records from `head.contentOffset` to the END record, checked against its checksum. */
function* walkContent(readAt: PRead, headBuf: Buffer, head: { contentOffset: number; endOffset: number }): Generator<Buffer> {
  let crc = crc32(headBuf.subarray(CRC_START, head.contentOffset));
  let pos = head.contentOffset;
  let carry: Buffer = Buffer.alloc(0);
  let sawXtra = false;
  // The first read usually holds the whole content of a small message: no second read then.
  let spare: Buffer | null = headBuf.length > head.contentOffset ? headBuf.subarray(head.contentOffset) : null;
  while (!sawXtra) {
    let got: Buffer;
    if (spare && carry.length === 0) {
      got = spare.subarray(0, Math.max(0, Math.min(spare.length, head.endOffset - pos)));
      spare = null;
      if (got.length === 0) continue;
    } else {
      const block = Buffer.allocUnsafe(Math.min(BLOCK_BYTES, Math.max(1, head.endOffset - pos - carry.length)));
      const n = readAt(block, 0, block.length, pos + carry.length);
      if (n === 0) throw new QueueFileError('file is truncated inside the message content');
      got = block.subarray(0, n);
    }
    const buf = carry.length ? Buffer.concat([carry, got]) : got;
    let off = 0;
    for (;;) {
      const rr = readRecord(buf, pos + off, pos);
      if (!rr.ok) {
        if (rr.reason === 'bad length') throw new QueueFileError('bad record length in message content');
        break;
      }
      const rec = rr.rec;
      if (rec.end > head.endOffset) throw new QueueFileError('content record runs past the END record');
      crc = crc32(buf.subarray(rec.offset - pos, rec.end - pos), crc);
      off = rec.end - pos;
      if (rec.type === REC.CONTENT) {
        yield Buffer.from(buf.subarray(rec.dataOffset - pos, rec.end - pos));
      } else if (rec.type === REC.XTRA) {
        sawXtra = true;
        if (rec.end !== head.endOffset) throw new QueueFileError('END record is not where the SIZE record says');
        break;
      } else throw new QueueFileError(`unexpected record type '${rec.type}' in message content`);
    }
    pos += off;
    carry = Buffer.from(buf.subarray(off));
  }
  const endBuf = Buffer.allocUnsafe(10);
  const endRead = readAt(endBuf, 0, 10, head.endOffset);
  const end = readRecord(endBuf.subarray(0, endRead), 0);
  if (!end.ok || end.rec.type !== REC.END) throw new QueueFileError('file is truncated: no END record');
  const want = endBuf.subarray(end.rec.dataOffset, end.rec.end).toString('latin1');
  if (want !== crc.toString(16).padStart(8, '0')) throw new QueueFileError('checksum mismatch: the queue file is damaged');
}
