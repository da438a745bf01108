// Reading queue files without their content: the head (envelope), the END record and the state
// journal. Used by start-up recovery (which must not read message bodies), by load() and by the
// listing commands. Synchronous on purpose: a head is one or two small reads, and the start-up scan
// of 100,000 files is several times faster without a thread-pool round trip per call.

import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { parseHead, parseTail, QueueFileError, type QueueFileHead } from './file.js';
import { readRecord } from './records.js';

const FIRST_READ = 16384;

/** Read one queue file's head and journal. Throws QueueFileError for a bad file, ErrnoException for I/O. */
export function readQueueHeadSync(path: string): QueueFileHead & { fileSize: number } {
  const fd = openSync(path, 'r');
  try {
    let buf = Buffer.allocUnsafe(FIRST_READ);
    let got = readSync(fd, buf, 0, buf.length, 0);
    let fileSize = got < buf.length ? got : -1;
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
    };
  } finally {
    closeSync(fd);
  }
}
