// The queue writer (Postfix's cleanup): one transaction per message. begin() reserves the queue
// id; write() streams the content into a temporary file in incoming/ as CONTENT records; commit()
// adds the END record and the sizes, fsyncs the file, renames it into its queue and fsyncs that
// directory (shared between concurrent commits by the Queue's DirSyncers) — only then may smtpd
// answer 250; abort() removes the temporary file and gives the id back. A file left in incoming/
// by a crash never got its 250, and recovery removes it.
// Trusts its callers for envelope contents (smtpd checked them) and for CRLF-normalized,
// dot-unstuffed content; trusts the Queue to hand it a reserved, unused id.

import { openSync, closeSync, ftruncateSync, renameSync, unlinkSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { SmtpError, type Envelope } from '../mail/index.js';
import { TransactionBase } from './txbase.js';
import { encodeHead, encodeSizeData, type QueueName } from './file.js';
import { ERR_STORAGE, ERR_WRITE, committedEntry, consume } from './txparts.js';
import { REC, CONTENT_CHUNK, encodeRecord, writeHeader, varintSize } from './records.js';
import { fsyncFd, closeQuietly, type WriteFn } from './disk.js';
import type { QueueEntry } from './entry.js';
import type { TakenFile } from './recycle.js';

export type { QueueTransaction, CommitOptions, BeginOptions } from './txbase.js';

/** What a transaction needs from the Queue that owns the files. */
export interface WriterStore {
  readonly write: WriteFn;
  /** Postfix's message_size_limit (bytes of content); 0 = no limit. */
  readonly sizeLimit: number;
  path(queue: QueueName, id: string): string;
  /** fsync a queue's directory (shared between concurrent callers). */
  syncDir(queue: QueueName): Promise<void>;
  /** A fresh path for a temporary file in incoming/. */
  tmpPath(): string;
  /** Take a removed queue file as `path`, opened for writing (recycle.ts), or null. */
  reuse?(path: string): TakenFile | null;
  /** The message is durable in its queue: index it, log it, announce it. */
  committed(entry: QueueEntry, env: Envelope, messageId: string | undefined, logClient: boolean): void;
  /** Give a reserved id back. */
  release(id: string): void;
}

const FLUSH_BYTES = 256 * 1024;

/** Any failure as the reply the client gets: disk full is 452, anything else unknown 451. */
function storageError(err: unknown): SmtpError {
  if (err instanceof SmtpError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const msg = err instanceof Error ? err.message : String(err);
  return new SmtpError(code === 'ENOSPC' || code === 'EDQUOT' ? ERR_STORAGE() : ERR_WRITE(), msg);
}

export class FileTransaction extends TransactionBase {
  /** The temporary file, from the first write (or the commit of an empty message). */
  private tmp: string | null = null;
  private fd: number | null = null;
  // The file as written so far: the head waits in `pending` until the first flush.
  private readonly head: Buffer;
  private readonly sizeDataOffset: number;
  private crc: number;
  private pending: Buffer[];
  private pendingBytes: number;
  private position = 0;
  private headWritten = false;
  /** Old bytes in a recycled file: what this message does not write over is cut off at commit. */
  private staleBytes = 0;

  constructor(
    private readonly store: WriterStore,
    id: string,
    env: Envelope,
    logClient: boolean,
  ) {
    super(id, env, logClient, store.sizeLimit, (i) => store.release(i));
    const { head, sizeDataOffset, crcStart } = encodeHead(env);
    this.head = head;
    this.sizeDataOffset = sizeDataOffset;
    this.crc = crc32(head.subarray(crcStart));
    this.pending = [head];
    this.pendingBytes = head.length;
  }

  protected async writeNow(content: AsyncIterable<Buffer | string> | Iterable<Buffer | string>): Promise<void> {
    this.usable();
    try {
      await this.openFile();
    } catch (err) {
      throw await this.fail(err);
    }
    // After a failure (size limit, write error) the rest of the content is still read, so that
    // the caller's stream (smtp-server's DATA stream) is consumed; the error is thrown at the end.
    const failure = await consume(content, (chunk) => {
      if (this.state === 'aborted') throw new Error('transaction aborted');
      this.append(chunk);
    });
    if (failure) throw await this.fail(failure);
  }

  private async openFile(): Promise<void> {
    if (this.fd !== null) return;
    this.tmp = this.store.tmpPath();
    const taken = this.store.reuse?.(this.tmp);
    this.fd = taken ? taken.fd : openSync(this.tmp, 'wx', 0o600);
    this.staleBytes = taken ? taken.staleBytes : 0;
  }

  private append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.account(chunk);
    for (let off = 0; off < chunk.length; off += CONTENT_CHUNK) {
      const piece = chunk.subarray(off, Math.min(chunk.length, off + CONTENT_CHUNK));
      const rh = Buffer.allocUnsafe(1 + varintSize(piece.length));
      writeHeader(rh, 0, REC.CONTENT, piece.length);
      this.crc = crc32(piece, crc32(rh, this.crc));
      this.push(rh, piece);
    }
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
  }

  private push(...bufs: Buffer[]): void {
    for (const b of bufs) {
      this.pending.push(b);
      this.pendingBytes += b.length;
    }
  }

  private flush(): void {
    this.store.write(this.fd!, this.pending, this.position);
    this.position += this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.headWritten = true;
  }

  protected async commitNow(target: 'active' | 'deferred' | 'hold'): Promise<string> {
    this.usable();
    const dest = this.store.path(target, this.id);
    let renamed = false;
    try {
      await this.openFile();
      this.finishFile();
      const fd = this.fd!;
      // A recycled file longer than this message: its tail goes before the fsync, so the file
      // that gets the queue name holds this message alone.
      if (this.staleBytes > this.position) ftruncateSync(fd, this.position);
      await fsyncFd(fd);
      this.fd = null;
      closeSync(fd);
      renameSync(this.tmp!, dest);
      renamed = true;
      await this.store.syncDir(target);
    } catch (err) {
      const e = await this.fail(err);
      if (renamed) unlinkQuietly(dest);
      throw e;
    }
    this.markCommitted();
    this.store.committed(committedEntry(this.id, target, this.env, this.size, this.position), this.env, this.messageId, this.logClient);
    return this.id;
  }

  /** XTRA and END (with the checksum) after the content, then the real sizes into the SIZE record. */
  private finishFile(): void {
    this.messageId = this.messageIdScan.finish();
    const xtra = encodeRecord(REC.XTRA, '');
    this.crc = crc32(xtra, this.crc);
    this.push(xtra);
    const endOffset = this.position + this.pendingBytes;
    this.push(encodeRecord(REC.END, this.crc.toString(16).padStart(8, '0')));
    const sizeData = encodeSizeData(this.size, this.head.length, endOffset, this.env.recipients.length);
    if (!this.headWritten) {
      sizeData.copy(this.head, this.sizeDataOffset);
      this.flush();
    } else {
      this.flush();
      this.store.write(this.fd!, [sizeData], this.sizeDataOffset);
    }
  }

  protected asReply(err: unknown): SmtpError {
    return storageError(err);
  }

  /** Close and remove the temporary file. */
  protected async discard(): Promise<void> {
    closeQuietly(this.fd);
    this.fd = null;
    if (this.tmp) unlinkQuietly(this.tmp);
    this.tmp = null;
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* not there (never created, or already gone) */
  }
}
