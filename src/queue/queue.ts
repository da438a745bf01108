// The durable mail queue (Postfix's cleanup + queue files). A message is written to incoming/,
// fsync'd, renamed into its queue and the queue directory fsync'd before accept() resolves — only
// then may smtpd answer 250. Directory fsyncs are shared between concurrent commits (DirSyncer).
// Per-recipient results and retry state are appended to the file as checksummed UPDATE records
// and fsync'd before the call resolves, so after a crash at most the in-flight deliveries repeat.
// Keeps a compact in-memory index (no bodies); start-up rebuilds it from the files' heads.
// Trusts its callers for envelope contents (smtpd checked them) and for CRLF-normalized,
// dot-unstuffed content; trusts nothing it reads back from disk.

import { EventEmitter } from 'node:events';
import { mkdirSync, readdirSync, renameSync, unlinkSync, truncateSync, openSync, fsyncSync, closeSync, statSync } from 'node:fs';
import { open, rename, unlink, copyFile, truncate, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { reply, SmtpError, type Envelope } from '../mail/index.js';
import { maillog as defaultMaillog, type Maillog, type Logger } from '../log/index.js';
import {
  QUEUE_NAMES,
  MESSAGE_QUEUES,
  QueueFileError,
  encodeHead,
  encodeSizeData,
  encodeUpdate,
  applyUpdate,
  findMessageId,
  parseHead,
  type QueueName,
  type RecipientState,
  type RecipientStatus,
  type RetryState,
  type StateUpdate,
  type QueueFileHead,
} from './file.js';
import { REC, CONTENT_CHUNK, encodeRecord, writeHeader, varintSize, readRecord } from './records.js';
import { readQueueHeadSync } from './read.js';
import { DirSyncer } from './dirsync.js';
import { makeQueueId, microseconds, isValidQueueId } from './id.js';
import { acquireQueueLock, type QueueLock } from './lock.js';
import { logClient, logMessageId, logQueueActive, logRemoved, logCorrupt, logIncomingRemoved, logTornUpdate } from './log.js';

/** The low-level write: all of `buffers` at `position`. Tests wrap it to inject ENOSPC. */
export type WriteFn = (fh: FileHandle, buffers: Buffer[], position: number) => Promise<void>;

export const writeAll: WriteFn = async (fh, buffers, position) => {
  const total = buffers.reduce((n, b) => n + b.length, 0);
  let done = (await fh.writev(buffers, position)).bytesWritten;
  if (done < total) {
    const rest = Buffer.concat(buffers).subarray(done);
    let off = 0;
    while (off < rest.length) {
      const { bytesWritten } = await fh.write(rest, off, rest.length - off, position + done + off);
      off += bytesWritten;
    }
    done += off;
  }
};

export interface QueueOptions {
  /** Postfix's queue_directory. */
  queueDirectory: string;
  maillog?: Maillog;
  /** Wraps the file write function (fault injection: ENOSPC, EIO). */
  wrapWrite?: (write: WriteFn) => WriteFn;
  /** Postfix's message_size_limit (bytes of content); 0 = no limit. Default 0. */
  messageSizeLimit?: number;
  /** Rewrite a file when its state journal grows beyond this many bytes. Default 65536. */
  compactThreshold?: number;
  /** Run start-up recovery (remove incoming/, move bad files to corrupt/). Default true. */
  recover?: boolean;
  /** Hold the queue lock while open (the server does; direct-mode commands take it themselves). */
  lock?: boolean;
  /** How long to wait for the lock. Default 10 s. */
  lockWaitMs?: number;
}

/** What the in-memory index keeps per message: no content, no envelope details beyond these. */
export interface QueueEntry {
  readonly id: string;
  queue: QueueName;
  arrivalTime: number;
  messageSize: number;
  sender: string;
  recipients: string[];
  /** One character per recipient: P pending, D delivered, B bounced. */
  status: string;
  retry: RetryState;
  fileSize: number;
  journalOffset: number;
}

export interface RecoveryReport {
  /** Files removed from incoming/ (never answered with 250). */
  removedIncoming: string[];
  /** Messages found in active/: they go back to the scheduler. */
  active: string[];
  /** Files moved to corrupt/ during this start-up. */
  corrupt: string[];
  /** Messages whose torn last state update was dropped. */
  torn: string[];
  /** Messages in the index after recovery. */
  messages: number;
  elapsedMs: number;
}

export interface AcceptOptions {
  /** Queue to commit into: active (default; the queue manager takes it from there), deferred or hold. */
  queue?: 'active' | 'deferred' | 'hold';
  /** An id reserved with newId() (smtpd names it in the Received: header before the content). */
  queueId?: string;
  /**
   * access(5) DISCARD: read the content, then claim success and keep nothing. Like `queue`, it is
   * read when the message is committed, so smtpd can still set it from an end-of-data verdict.
   */
  discard?: boolean;
}

/** Result of one delivery attempt for some recipients. */
export type RecipientResult =
  | string
  | { reason: string; dsn?: string; remoteMta?: string; diagnosticCode?: string };

export interface QueueEvents {
  /** A message was committed (its 250 may now be sent). */
  accepted: [id: string, entry: QueueEntry];
  /** A message moved between queues. */
  moved: [id: string, from: QueueName, to: QueueName];
  /** Recipient or retry state changed. */
  updated: [id: string, entry: QueueEntry];
  /** A message left the queue. */
  removed: [id: string, from: QueueName];
}

const STATUS_CHAR: Record<RecipientStatus, string> = { pending: 'P', delivered: 'D', bounced: 'B' };
const CRC_START = 1 + 1 + 16 + 1 + 1 + 63; // VERSION + SIZE records: the END checksum covers what follows
const FLUSH_BYTES = 256 * 1024;
const HEADER_SCAN_LIMIT = 65536;
const CRLF = Buffer.from('\r\n');

const ERR_STORAGE = () => reply(452, '4.3.1', 'Insufficient system storage');
const ERR_WRITE = () => reply(451, '4.3.0', 'Error: queue file write error');
const ERR_TOO_BIG = () => reply(552, '5.3.4', 'Message file too big');

function storageError(err: unknown): SmtpError {
  if (err instanceof SmtpError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  const msg = err instanceof Error ? err.message : String(err);
  return new SmtpError(code === 'ENOSPC' || code === 'EDQUOT' ? ERR_STORAGE() : ERR_WRITE(), msg);
}

/** The queues the scheduler moves mail between (see moveUnlocked). */
const SCHEDULING: ReadonlySet<QueueName> = new Set<QueueName>(['active', 'deferred']);

export class QueueError extends Error {
  constructor(message: string, readonly code: 'ENOENT' | 'EINVAL') {
    super(message);
    this.name = 'QueueError';
  }
}

export class Queue extends EventEmitter<QueueEvents> {
  readonly dir: string;
  recovery!: RecoveryReport;
  private readonly index = new Map<string, QueueEntry>();
  private readonly reserved = new Set<string>();
  private idSeq = Math.floor(Math.random() * 0x1000000);
  private readonly syncers = new Map<QueueName, DirSyncer>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly write: WriteFn;
  private readonly sizeLimit: number;
  private readonly compactThreshold: number;
  private readonly log: { smtpd: Logger; cleanup: Logger; qmgr: Logger };
  private readonly maillog: Maillog;
  private lock: QueueLock | null = null;
  private tmpCounter = 0;
  private closed = false;

  private constructor(private readonly opts: QueueOptions) {
    super();
    this.dir = opts.queueDirectory;
    this.write = opts.wrapWrite ? opts.wrapWrite(writeAll) : writeAll;
    this.sizeLimit = opts.messageSizeLimit ?? 0;
    this.compactThreshold = opts.compactThreshold ?? 65536;
    this.maillog = opts.maillog ?? defaultMaillog;
    this.log = { smtpd: this.maillog.logger('smtpd'), cleanup: this.maillog.logger('cleanup'), qmgr: this.maillog.logger('qmgr') };
    for (const q of QUEUE_NAMES) this.syncers.set(q, new DirSyncer(join(this.dir, q)));
  }

  /** Open the queue: create the folders, take the lock if asked, recover and index what is there. */
  static async open(opts: QueueOptions): Promise<Queue> {
    const q = new Queue(opts);
    for (const name of QUEUE_NAMES) mkdirSync(join(q.dir, name), { recursive: true });
    if (opts.lock) q.lock = await acquireQueueLock(q.dir, { waitMs: opts.lockWaitMs ?? 10_000 });
    try {
      q.recovery = await q.scan(opts.recover ?? true);
    } catch (err) {
      await q.lock?.release();
      throw err;
    }
    return q;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.chains.values()]);
    for (const s of this.syncers.values()) await s.close();
    await this.lock?.release();
  }

  /** A logger for a service name, on this queue's maillog. */
  logger(service: string): Logger {
    return this.maillog.logger(service);
  }

  path(queue: QueueName, id: string): string {
    return join(this.dir, queue, id);
  }

  /** Number of directory fsyncs so far, per queue (group-commit statistics). */
  dirSyncCount(queue: QueueName): number {
    return this.syncers.get(queue)!.syncs;
  }

  // ---------------------------------------------------------------- accept

  /**
   * Write a message durably and return its queue ID. Resolves only after the file and the target
   * queue's directory are fsync'd. Throws SmtpError: 452 4.3.1 when the disk is full, 451 4.3.0 on
   * any other write error, 552 5.3.4 when the content exceeds messageSizeLimit. On error no file
   * is left behind.
   */
  /**
   * Reserve a queue id before the content exists, for accept({queueId}). The id has Postfix's
   * shape (microseconds, then a number in hex); a per-process sequence stands in for the inode,
   * and the index and other reservations are checked, so it is unique among live files.
   */
  newId(): string {
    let id: string;
    do {
      this.idSeq = (this.idSeq + 1) % 0x10000000;
      id = makeQueueId(this.idSeq);
    } while (this.index.has(id) || this.reserved.has(id));
    this.reserved.add(id);
    return id;
  }

  async accept(env: Envelope, content: AsyncIterable<Buffer | string> | Iterable<Buffer | string> | Readable, opts: AcceptOptions = {}): Promise<string> {
    if (this.closed) throw new SmtpError(reply(451, '4.3.0', 'Error: queue file write error'), 'queue is closed');
    if (env.recipients.length === 0) throw new SmtpError(reply(554, '5.5.1', 'Error: no valid recipients'));
    let target: QueueName = opts.queue ?? 'active';
    const tmp = join(this.dir, 'incoming', `t${process.pid}.${++this.tmpCounter}`);
    let fh: FileHandle | null = null;
    let id: string | null = null;
    let renamed = false;
    try {
      fh = await open(tmp, 'wx', 0o600);
      const st = await fh.stat();
      if (opts.queueId && this.reserved.has(opts.queueId)) {
        id = opts.queueId;
      } else {
        id = makeQueueId(st.ino);
        while (this.index.has(id) || this.reserved.has(id)) id = makeQueueId(st.ino, (microseconds() + 1) % 1_000_000);
        this.reserved.add(id);
      }

      const { head, sizeDataOffset } = encodeHead(env);
      let crc = crc32(head.subarray(CRC_START));
      let pending: Buffer[] = [head];
      let pendingBytes = head.length;
      let position = 0;
      let headWritten = false;
      let size = 0;
      let headerScan: Buffer[] | null = [];
      let headerScanBytes = 0;
      let messageId: string | undefined;
      const flush = async () => {
        await this.write(fh!, pending, position);
        position += pendingBytes;
        pending = [];
        pendingBytes = 0;
        headWritten = true;
      };
      // After a failure (size limit, write error) the rest of the content is still read, so that
      // the caller's stream (smtp-server's DATA stream) is consumed; the error is thrown at the end.
      let failure: unknown = null;
      for await (const raw of content as AsyncIterable<Buffer | string>) {
        if (failure) continue;
        try {
          const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
          if (chunk.length === 0) continue;
          size += chunk.length;
          if (this.sizeLimit > 0 && size > this.sizeLimit) {
            throw new SmtpError(ERR_TOO_BIG(), `message size ${size} exceeds message_size_limit ${this.sizeLimit}`);
          }
          if (headerScan) {
            headerScan.push(chunk);
            headerScanBytes += chunk.length;
            const joined = Buffer.concat(headerScan);
            const endOfHeader = joined.subarray(0, 2).equals(CRLF) ? 0 : joined.indexOf('\r\n\r\n');
            if (endOfHeader >= 0 || headerScanBytes >= HEADER_SCAN_LIMIT) {
              messageId = findMessageId(joined.subarray(0, endOfHeader >= 0 ? endOfHeader + 2 : joined.length));
              headerScan = null;
            } else headerScan = [joined];
          }
          for (let off = 0; off < chunk.length; off += CONTENT_CHUNK) {
            const piece = chunk.subarray(off, Math.min(chunk.length, off + CONTENT_CHUNK));
            const rh = Buffer.allocUnsafe(1 + varintSize(piece.length));
            writeHeader(rh, 0, REC.CONTENT, piece.length);
            crc = crc32(piece, crc32(rh, crc));
            pending.push(rh, piece);
            pendingBytes += rh.length + piece.length;
          }
          if (pendingBytes >= FLUSH_BYTES) await flush();
        } catch (err) {
          failure = err;
        }
      }
      if (failure) throw failure;
      if (headerScan) messageId = findMessageId(Buffer.concat(headerScan));
      const xtra = encodeRecord(REC.XTRA, '');
      crc = crc32(xtra, crc);
      pending.push(xtra);
      pendingBytes += xtra.length;
      const endOffset = position + pendingBytes;
      const end = encodeRecord(REC.END, crc.toString(16).padStart(8, '0'));
      pending.push(end);
      pendingBytes += end.length;
      const sizeData = encodeSizeData(size, head.length, endOffset, env.recipients.length);
      if (!headWritten) {
        sizeData.copy(head, sizeDataOffset);
        await flush();
      } else {
        await flush();
        await this.write(fh, [sizeData], sizeDataOffset);
      }
      if (opts.discard) {
        await fh.close();
        fh = null;
        await unlink(tmp);
        this.reserved.delete(id);
        return id;
      }
      await fh.sync();
      await fh.close();
      fh = null;
      // Read again: an end-of-data HOLD verdict arrives after accept() was called.
      target = opts.queue ?? 'active';
      await rename(tmp, this.path(target, id));
      renamed = true;
      await this.syncers.get(target)!.sync();

      const entry: QueueEntry = {
        id,
        queue: target,
        arrivalTime: env.arrivalTime,
        messageSize: size,
        sender: env.sender,
        recipients: env.recipients.map((r) => r.address),
        status: 'P'.repeat(env.recipients.length),
        retry: { nextAttempt: 0, attempts: 0, delayWarningSent: false, forcedExpire: false },
        fileSize: position,
        journalOffset: position,
      };
      this.index.set(id, entry);
      this.reserved.delete(id);
      // smtpd logs client= itself when it reserved the id up front (before the content).
      if (!opts.queueId) logClient(this.log.smtpd, id, env.client.name, env.client.address);
      logMessageId(this.log.cleanup, id, messageId);
      if (target === 'active') logQueueActive(this.log.qmgr, id, env.sender, size, env.recipients.length);
      this.emit('accepted', id, entry);
      return id;
    } catch (err) {
      if (id) this.reserved.delete(id);
      if (opts.queueId) this.reserved.delete(opts.queueId);
      if (fh) await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      if (renamed && id) await unlink(this.path(target, id)).catch(() => undefined);
      throw storageError(err);
    }
  }

  // ---------------------------------------------------------------- index

  get(id: string): QueueEntry | undefined {
    return this.index.get(id);
  }

  has(id: string): boolean {
    return this.index.has(id);
  }

  get size(): number {
    return this.index.size;
  }

  /** Messages in one queue (or all), oldest first. */
  list(queue?: QueueName): QueueEntry[] {
    const out: QueueEntry[] = [];
    for (const e of this.index.values()) if (!queue || e.queue === queue) out.push(e);
    return out.sort((a, b) => a.arrivalTime - b.arrivalTime || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private entry(id: string): QueueEntry {
    const e = this.index.get(id);
    if (!e) throw new QueueError(`${id}: no such message in the queue`, 'ENOENT');
    return e;
  }

  /** Envelope, per-recipient states and retry state of one message, read from its file. */
  async load(id: string): Promise<QueueFileHead & { id: string; queue: QueueName }> {
    return this.serial(id, async () => {
      const e = this.entry(id);
      const h = readQueueHeadSync(this.path(e.queue, id));
      return { ...h, id, queue: e.queue };
    });
  }

  /**
   * The message content as stored (CRLF lines), in chunks. Verifies the file's checksum at the end
   * and throws QueueFileError when it does not match (the caller defers and moves it to corrupt/).
   */
  content(id: string): AsyncIterable<Buffer> {
    const e = this.entry(id);
    return readContent(this.path(e.queue, id));
  }

  /** The content as a Readable stream. */
  contentStream(id: string): Readable {
    return Readable.from(this.content(id), { objectMode: false });
  }

  // ---------------------------------------------------------------- state updates

  markDelivered(id: string, recipients: number[], result: RecipientResult): Promise<void> {
    return this.markRecipients(id, recipients, 'delivered', result);
  }

  markBounced(id: string, recipients: number[], result: RecipientResult): Promise<void> {
    return this.markRecipients(id, recipients, 'bounced', result);
  }

  /** Record a temporary failure: the recipients stay pending, with this delay reason. */
  markDeferred(id: string, recipients: number[], result: RecipientResult): Promise<void> {
    return this.markRecipients(id, recipients, 'pending', result);
  }

  private markRecipients(id: string, idx: number[], s: RecipientStatus, result: RecipientResult): Promise<void> {
    const r = typeof result === 'string' ? { reason: result } : result;
    return this.serial(id, async () => {
      const e = this.entry(id);
      for (const i of idx) {
        if (!Number.isInteger(i) || i < 0 || i >= e.recipients.length) {
          throw new QueueError(`${id}: recipient index ${i} out of range (0..${e.recipients.length - 1})`, 'EINVAL');
        }
      }
      const u: StateUpdate = { t: Date.now(), r: { i: idx, s, why: r.reason } };
      if (r.dsn !== undefined) u.r!.dsn = r.dsn;
      if (r.remoteMta !== undefined) u.r!.mta = r.remoteMta;
      if (r.diagnosticCode !== undefined) u.r!.diag = r.diagnosticCode;
      await this.appendUpdate(e, u);
    });
  }

  /**
   * After an attempt that left recipients to retry: count the attempt, set the next attempt time
   * and reason, and move the file to deferred/ (unless it is on hold).
   */
  defer(id: string, nextAttempt: number, reason: string): Promise<void> {
    return this.serial(id, async () => {
      const e = this.entry(id);
      await this.appendUpdate(e, { t: Date.now(), q: { nextAttempt, attempts: e.retry.attempts + 1, lastReason: reason } });
      if (e.queue === 'active') await this.moveUnlocked(e, 'deferred');
    });
  }

  /** Change retry fields without counting an attempt (delay warning sent, forced expiry, requeue). */
  updateRetry(id: string, patch: Partial<RetryState>): Promise<void> {
    return this.serial(id, async () => {
      await this.appendUpdate(this.entry(id), { t: Date.now(), q: patch });
    });
  }

  markDelayWarningSent(id: string): Promise<void> {
    return this.updateRetry(id, { delayWarningSent: true });
  }

  private async appendUpdate(e: QueueEntry, u: StateUpdate): Promise<void> {
    const rec = encodeUpdate(u);
    const path = this.path(e.queue, e.id);
    const fh = await open(path, 'r+');
    try {
      await this.write(fh, [rec], e.fileSize);
      await fh.sync();
    } finally {
      await fh.close();
    }
    e.fileSize += rec.length;
    if (u.r) {
      const c = STATUS_CHAR[u.r.s];
      const chars = e.status.split('');
      for (const i of u.r.i) chars[i] = c;
      e.status = chars.join('');
    }
    if (u.q) e.retry = { ...e.retry, ...u.q };
    if (e.fileSize - e.journalOffset > this.compactThreshold) await this.compact(e);
    this.emit('updated', e.id, e);
  }

  /** Rewrite a file whose journal grew long: the immutable part, then one snapshot update. */
  private async compact(e: QueueEntry): Promise<void> {
    const path = this.path(e.queue, e.id);
    const h = readQueueHeadSync(path);
    const snap = encodeUpdate({ t: Date.now(), snap: { r: h.states, q: h.retry } });
    const tmp = join(this.dir, 'incoming', `${e.id}.compact`);
    try {
      await copyFile(path, tmp);
      await truncate(tmp, h.journalOffset);
      const fh = await open(tmp, 'r+');
      try {
        await this.write(fh, [snap], h.journalOffset);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      await this.syncers.get(e.queue)!.sync();
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    e.fileSize = h.journalOffset + snap.length;
    e.journalOffset = h.journalOffset;
  }

  // ---------------------------------------------------------------- moves

  moveTo(id: string, queue: QueueName): Promise<void> {
    if (queue === 'incoming') return Promise.reject(new QueueError(`${id}: cannot move a committed message to incoming`, 'EINVAL'));
    return this.serial(id, async () => this.moveUnlocked(this.entry(id), queue));
  }

  private async moveUnlocked(e: QueueEntry, to: QueueName): Promise<void> {
    const from = e.queue;
    if (from === to) return;
    await rename(this.path(from, e.id), this.path(to, e.id));
    // A move between the two scheduling queues (active ↔ deferred) needs no directory fsync, as in
    // Postfix's qmgr: the message's state (recipients, retry time) lives in the file, fsync'd by
    // appendUpdate; a rename is one atomic journal transaction, so after a crash the name is in
    // exactly one of the two folders, and both are scanned at start-up. Losing the move only
    // changes when the message is tried next. Any other move (hold, corrupt: an administrator's
    // or a safety decision) is made durable in both directories.
    if (!(SCHEDULING.has(from) && SCHEDULING.has(to))) {
      await Promise.all([this.syncers.get(to)!.sync(), this.syncers.get(from)!.sync()]);
    }
    e.queue = to;
    if (to === 'active') {
      const nrcpt = e.status.split('').filter((c) => c === 'P').length;
      logQueueActive(this.log.qmgr, e.id, e.sender, e.messageSize, nrcpt);
    }
    this.emit('moved', e.id, from, to);
  }

  /** postsuper -h: put a message on hold. */
  hold(id: string): Promise<void> {
    return this.moveTo(id, 'hold');
  }

  /** postsuper -H: release a held message to deferred/. */
  release(id: string): Promise<void> {
    return this.serial(id, async () => {
      const e = this.entry(id);
      if (e.queue !== 'hold') throw new QueueError(`${id}: message is not on hold`, 'EINVAL');
      await this.moveUnlocked(e, 'deferred');
    });
  }

  /** postsuper -r: make a message due now and put it in deferred/ (also releases held mail, as Postfix does). */
  requeue(id: string): Promise<void> {
    return this.serial(id, async () => {
      const e = this.entry(id);
      await this.appendUpdate(e, { t: Date.now(), q: { nextAttempt: 0 } });
      await this.moveUnlocked(e, 'deferred');
    });
  }

  /** Remove a message: unlink, fsync the directory, log `ID: removed`. */
  remove(id: string, service = 'qmgr'): Promise<void> {
    return this.serial(id, async () => {
      const e = this.entry(id);
      await unlink(this.path(e.queue, id));
      await this.syncers.get(e.queue)!.sync();
      this.index.delete(id);
      logRemoved(service === 'qmgr' ? this.log.qmgr : this.maillog.logger(service), id);
      this.emit('removed', id, e.queue);
    });
  }

  /** Run `fn` after every earlier operation on `id` finished (one file, one writer at a time). */
  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(id) ?? Promise.resolve();
    const p = prev.then(fn, fn);
    const tail = p.then(
      () => undefined,
      () => undefined,
    );
    this.chains.set(id, tail);
    void tail.then(() => {
      if (this.chains.get(id) === tail) this.chains.delete(id);
    });
    return p;
  }

  // ---------------------------------------------------------------- start-up

  private async scan(recover: boolean): Promise<RecoveryReport> {
    const t0 = Date.now();
    const report: RecoveryReport = { removedIncoming: [], active: [], corrupt: [], torn: [], messages: 0, elapsedMs: 0 };
    const qmgr = this.log.qmgr;
    if (recover) {
      const incoming = join(this.dir, 'incoming');
      for (const name of readdirSync(incoming)) {
        try {
          unlinkSync(join(incoming, name));
          report.removedIncoming.push(name);
          // A compaction temp file never replaced anything: the original is still in its queue.
          if (!name.endsWith('.compact')) logIncomingRemoved(qmgr, name);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      if (report.removedIncoming.length) fsyncDir(incoming);
    }
    let n = 0;
    for (const queue of MESSAGE_QUEUES) {
      const dir = join(this.dir, queue);
      let movedAny = false;
      for (const name of readdirSync(dir)) {
        if (++n % 2000 === 0) await new Promise((r) => setImmediate(r));
        const path = join(dir, name);
        let reason: string | null = null;
        if (!isValidQueueId(name)) reason = 'bogus file name';
        else if (this.index.has(name)) {
          const other = this.index.get(name)!;
          if (sameFile(path, this.path(other.queue, name))) {
            // One file under two names (a crash between a rename and its fsyncs): keep one.
            if (recover) unlinkSync(path);
            continue;
          }
          reason = `duplicate queue ID (also in ${other.queue}/)`;
        }
        if (!reason) {
          try {
            const h = readQueueHeadSync(path);
            if (h.torn) {
              report.torn.push(name);
              logTornUpdate(qmgr, queue, name, h.validLength);
              if (recover) truncateDurably(path, h.validLength);
            }
            const entry: QueueEntry = {
              id: name,
              queue,
              arrivalTime: h.envelope.arrivalTime,
              messageSize: h.messageSize,
              sender: h.envelope.sender,
              recipients: h.envelope.recipients.map((r) => r.address),
              status: h.states.map((s) => STATUS_CHAR[s.status]).join(''),
              retry: h.retry,
              fileSize: h.validLength,
              journalOffset: h.journalOffset,
            };
            this.index.set(name, entry);
            if (queue === 'active') report.active.push(name);
            continue;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
            // A stray directory under a queue-ID name is not a message either; not fatal.
            if (!(err instanceof QueueFileError) && (err as NodeJS.ErrnoException).code !== 'EISDIR') throw err;
            reason = (err as Error).message;
          }
        }
        if (recover && reason) {
          const dest = uniqueCorruptName(this.dir, name);
          renameSync(path, join(this.dir, 'corrupt', dest));
          logCorrupt(qmgr, queue, name, reason);
          report.corrupt.push(dest);
          movedAny = true;
        }
      }
      if (movedAny) fsyncDir(dir);
    }
    if (report.corrupt.length) fsyncDir(join(this.dir, 'corrupt'));
    report.messages = this.index.size;
    report.elapsedMs = Date.now() - t0;
    return report;
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function truncateDurably(path: string, length: number): void {
  truncateSync(path, length);
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function sameFile(a: string, b: string): boolean {
  try {
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.ino === sb.ino && sa.dev === sb.dev;
  } catch {
    return false;
  }
}

function uniqueCorruptName(dir: string, name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_.-]/g, '_') || 'unnamed';
  let candidate = safe;
  for (let i = 1; ; i++) {
    try {
      statSync(join(dir, 'corrupt', candidate));
    } catch {
      return candidate;
    }
    candidate = `${safe}.${i}`;
  }
}

/** Stream the content of the queue file at `path`, verifying records and the END checksum. */
export async function* readContent(path: string): AsyncGenerator<Buffer> {
  const fh = await open(path, 'r');
  try {
    const first = Buffer.allocUnsafe(16384);
    let { bytesRead } = await fh.read(first, 0, first.length, 0);
    let headBuf = first.subarray(0, bytesRead);
    let head: ReturnType<typeof parseHead>;
    for (;;) {
      try {
        head = parseHead(headBuf);
        break;
      } catch (err) {
        if (!(err instanceof QueueFileError) || bytesRead < headBuf.length || !/truncated/.test(err.message)) throw err;
        const bigger = Buffer.allocUnsafe(headBuf.length * 4);
        headBuf.copy(bigger);
        const r = await fh.read(bigger, headBuf.length, bigger.length - headBuf.length, headBuf.length);
        bytesRead = headBuf.length + r.bytesRead;
        headBuf = bigger.subarray(0, bytesRead);
        if (r.bytesRead === 0) throw err;
      }
    }
    let crc = crc32(headBuf.subarray(CRC_START, head.contentOffset));
    let pos = head.contentOffset;
    let carry: Buffer = Buffer.alloc(0);
    let sawXtra = false;
    while (!sawXtra) {
      const block = Buffer.allocUnsafe(Math.min(FLUSH_BYTES, Math.max(1, head.endOffset - pos - carry.length)));
      const r = await fh.read(block, 0, block.length, pos + carry.length);
      if (r.bytesRead === 0) throw new QueueFileError('file is truncated inside the message content');
      const buf = carry.length ? Buffer.concat([carry, block.subarray(0, r.bytesRead)]) : block.subarray(0, r.bytesRead);
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
    const er = await fh.read(endBuf, 0, 10, head.endOffset);
    const end = readRecord(endBuf.subarray(0, er.bytesRead), 0);
    if (!end.ok || end.rec.type !== REC.END) throw new QueueFileError('file is truncated: no END record');
    const want = endBuf.subarray(end.rec.dataOffset, end.rec.end).toString('latin1');
    if (want !== crc.toString(16).padStart(8, '0')) throw new QueueFileError('checksum mismatch: the queue file is damaged');
  } finally {
    await fh.close();
  }
}

export type { RecipientState };
