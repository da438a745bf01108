// The durable mail queue (Postfix's cleanup + queue files + the queue manager's moves). The Queue
// keeps a compact in-memory index of the messages (no bodies) and moves files between queues; the
// work on one file is done elsewhere: writer.ts takes a message in (begin → write → commit/abort,
// durable before commit resolves), journal.ts appends state updates, recovery.ts rebuilds the
// index at start-up, read.ts reads files back. Operations on one message run one at a time
// (serial()); directory fsyncs are shared between concurrent callers (DirSyncer).
// Trusts its callers for envelope contents (smtpd checked them); trusts nothing read from disk.

import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { reply, SmtpError, type Envelope } from '../mail/index.js';
import { maillog as defaultMaillog, type Maillog, type Logger } from '../log/index.js';
import { QUEUE_NAMES, type QueueName, type RecipientStatus, type RetryState, type StateUpdate, type QueueFileHead } from './file.js';
import { readQueueHeadSync, readEnvelopeSync, readContent, FIRST_READ } from './read.js';
import { DirSyncer } from './dirsync.js';
import { FileOps } from './fileops.js';
import { QueueIds } from './id.js';
import { acquireQueueLock, type QueueLock } from './lock.js';
import { writeAll, type WriteFn } from './disk.js';
import { QueueError, type QueueEntry, type QueueEvents } from './entry.js';
import { appendUpdate, recipientUpdate, type JournalStore, type RecipientResult } from './journal.js';
import { recoverQueue, type RecoveryReport } from './recovery.js';
import { RecyclePool, RECYCLE_FOLDER, keepsBytes } from './recycle.js';
import { FileTransaction, type QueueTransaction, type WriterStore, type BeginOptions } from './writer.js';
import { logClient, logMessageId, logQueueActive, logRemoved } from './log.js';
import type { SchedulingQueue } from './scheduling.js';

/** Files the helper thread read, kept for the load() that follows (Queue.reads). */
const READS_KEPT = 512;
/**
 * Bytes of whole small queue files kept between load() and the content read (Queue.wholeFiles):
 * a flush activates thousands of messages at once and delivers them over seconds; with 512 files
 * kept, 95% of a 10,000-message drain's deliveries opened and read their file again on the event
 * loop (bench/qmgr-drain.ts). 16 MB holds 13,000 messages of 1 KB, or 1,000 of the largest kept (16 KB).
 */
const WHOLE_BYTES_KEPT = 16 * 1024 * 1024;

export interface QueueOptions {
  /** Postfix's queue_directory. */
  queueDirectory: string;
  maillog?: Maillog;
  /** Wraps the file write function (fault injection: ENOSPC, EIO). */
  wrapWrite?: (write: WriteFn) => WriteFn;
  /** Postfix's message_size_limit (bytes of content); 0 = no limit. Default 0. */
  messageSizeLimit?: number;
  /**
   * backstop_queue_file_recycle_limit: keep up to this many removed files, emptied, in recycle/
   * for new messages instead of unlinking them (recycle.ts); 0 = unlink. Default 0.
   */
  recycleLimit?: number;
  /** Rewrite a file when its state journal grows beyond this many bytes. Default 65536. */
  compactThreshold?: number;
  /** Run start-up recovery (remove incoming/, move bad files to corrupt/). Default true. */
  recover?: boolean;
  /** Hold the queue lock while open (the server does; direct-mode commands take it themselves). */
  lock?: boolean;
  /** How long to wait for the lock. Default 10 s. */
  lockWaitMs?: number;
}

/** Keeps `value` under `id`, at most READS_KEPT entries: the oldest goes first. */
function keepBounded<V>(map: Map<string, V>, id: string, value: V): void {
  map.delete(id);
  if (map.size >= READS_KEPT) map.delete(map.keys().next().value!);
  map.set(id, value);
}

interface WholeFile {
  bytes: Buffer;
  contentOffset: number;
  endOffset: number;
}

/** Whole files by queue ID, at most WHOLE_BYTES_KEPT bytes of them: the oldest go first. */
class WholeFiles {
  private readonly files = new Map<string, WholeFile>();
  private bytes = 0;

  set(id: string, f: WholeFile): void {
    this.delete(id);
    if (f.bytes.length > WHOLE_BYTES_KEPT) return;
    while (this.bytes + f.bytes.length > WHOLE_BYTES_KEPT) this.delete(this.files.keys().next().value!);
    this.files.set(id, f);
    this.bytes += f.bytes.length;
  }

  /** The file kept for `id`, no longer kept. */
  take(id: string): WholeFile | undefined {
    const f = this.files.get(id);
    if (f) this.delete(id);
    return f;
  }

  delete(id: string): void {
    const f = this.files.get(id);
    if (!f) return;
    this.files.delete(id);
    this.bytes -= f.bytes.length;
  }
}

/** The queues the scheduler moves mail between (see moveUnlocked). */
const SCHEDULING: ReadonlySet<QueueName> = new Set<QueueName>(['active', 'deferred']);

export class Queue extends EventEmitter<QueueEvents> implements SchedulingQueue {
  readonly dir: string;
  recovery!: RecoveryReport;
  private readonly index = new Map<string, QueueEntry>();
  private readonly ids = new QueueIds((id) => this.index.has(id));
  private readonly syncers = new Map<QueueName, DirSyncer>();
  private tmpCounter = 0;
  private readonly chains = new Map<string, Promise<unknown>>();
  /** What the writer and the journal see of this queue. */
  private readonly store: WriterStore & JournalStore;
  private readonly log: { smtpd: Logger; cleanup: Logger; qmgr: Logger };
  private readonly maillog: Maillog;
  private lock: QueueLock | null = null;
  private closed = false;
  /** Renames between queues and removals: batched into a helper thread (fileops.ts). */
  private readonly fileOps = new FileOps();
  /** Removed files kept for new ones (recycle.ts). */
  private readonly pool: RecyclePool;
  /** Each queue's folder with a trailing '/', for path(). */
  private readonly folders: Record<QueueName, string>;

  private constructor(opts: QueueOptions) {
    super();
    this.dir = opts.queueDirectory;
    this.folders = Object.fromEntries(QUEUE_NAMES.map((q) => [q, join(this.dir, q) + '/'])) as Record<QueueName, string>;
    this.maillog = opts.maillog ?? defaultMaillog;
    this.log = { smtpd: this.maillog.logger('smtpd'), cleanup: this.maillog.logger('cleanup'), qmgr: this.maillog.logger('qmgr') };
    for (const q of QUEUE_NAMES) this.syncers.set(q, new DirSyncer(join(this.dir, q)));
    this.pool = new RecyclePool(this.dir, opts.recycleLimit ?? 0);
    this.store = {
      dir: this.dir,
      write: opts.wrapWrite ? opts.wrapWrite(writeAll) : writeAll,
      sizeLimit: opts.messageSizeLimit ?? 0,
      compactThreshold: opts.compactThreshold ?? 65536,
      path: (queue, id) => this.path(queue, id),
      syncDir: (queue) => this.syncDir(queue),
      tmpPath: () => join(this.dir, 'incoming', `t${process.pid}.${++this.tmpCounter}`),
      reuse: (path) => this.pool.take(path),
      committed: (entry, env, messageId, client) => this.committed(entry, env, messageId, client),
      release: (id) => this.ids.release(id),
    };
  }

  /** Open the queue: create the folders, take the lock if asked, recover and index what is there. */
  static async open(opts: QueueOptions): Promise<Queue> {
    const q = new Queue(opts);
    for (const name of QUEUE_NAMES) mkdirSync(join(q.dir, name), { recursive: true });
    if (q.pool.limit > 0) mkdirSync(join(q.dir, RECYCLE_FOLDER), { recursive: true });
    if (opts.lock) q.lock = await acquireQueueLock(q.dir, { waitMs: opts.lockWaitMs ?? 10_000 });
    try {
      q.recovery = await recoverQueue(q.dir, q.index, opts.recover ?? true, q.log.qmgr);
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
    await this.fileOps.close();
    for (const s of this.syncers.values()) await s.close();
    await this.lock?.release();
  }

  /** A logger for a service name, on this queue's maillog. */
  logger(service: string): Logger {
    return this.maillog.logger(service);
  }

  path(queue: QueueName, id: string): string {
    // Several times per delivered message: the folder's prefix is joined once (an id has no '/').
    return id.includes('/') ? join(this.dir, queue, id) : this.folders[queue] + id;
  }

  /** Number of directory fsyncs so far, per queue (group-commit statistics). */
  dirSyncCount(queue: QueueName): number {
    return this.syncers.get(queue)!.syncs;
  }

  private syncDir(queue: QueueName): Promise<void> {
    return this.syncers.get(queue)!.sync();
  }

  // ---------------------------------------------------------------- taking mail in (writer.ts)

  /** Reserve a queue id: Postfix's shape, unique among live messages and reservations (id.ts). */
  newId(): string {
    return this.ids.reserve();
  }

  /**
   * Start taking in one message; its id is reserved now. Throws SmtpError 451 4.3.0 when the queue
   * is closed, 554 5.5.1 without recipients. See QueueTransaction for write, commit and abort.
   */
  begin(env: Envelope, opts: BeginOptions = {}): QueueTransaction {
    this.checkBegin(env);
    return new FileTransaction(this.store, this.newId(), env, opts.logClient ?? true);
  }

  private checkBegin(env: Envelope): void {
    if (this.closed) throw new SmtpError(reply(451, '4.3.0', 'Error: queue file write error'), 'queue is closed');
    if (env.recipients.length === 0) throw new SmtpError(reply(554, '5.5.1', 'Error: no valid recipients'));
  }

  /** A transaction's message is durable in its queue: index it, log it, tell the listeners. */
  private committed(entry: QueueEntry, env: Envelope, messageId: string | undefined, client: boolean): void {
    this.index.set(entry.id, entry);
    this.ids.release(entry.id);
    if (client) logClient(this.log.smtpd, entry.id, env.client.name, env.client.address);
    logMessageId(this.log.cleanup, entry.id, messageId);
    if (entry.queue === 'active') logQueueActive(this.log.qmgr, entry.id, env.sender, entry.messageSize, env.recipients.length);
    this.emit('accepted', entry.id, entry);
  }

  /**
   * A message another process (an smtpd worker's QueueWriter) committed: index it and announce it
   * as if it had been committed here. Idempotent: a message already indexed (found by recovery,
   * or announced twice) is left alone.
   */
  adopt(entry: QueueEntry): void {
    if (this.closed || this.index.has(entry.id)) return;
    this.index.set(entry.id, { ...entry, recipients: [...entry.recipients], retry: { ...entry.retry } });
    if (entry.queue === 'active') logQueueActive(this.log.qmgr, entry.id, entry.sender, entry.messageSize, entry.recipients.length);
    this.emit('accepted', entry.id, this.index.get(entry.id)!);
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

  /**
   * Envelope, per-recipient states and retry state of one message, read from its file.
   * `statesFromIndex`: the recipients' statuses and the retry state come from the index (kept
   * current by every update this queue appended) and the journal is not parsed — the queue
   * manager's activation, which needs no reasons (the notices load them again).
   */
  async load(id: string, opts: { statesFromIndex?: boolean } = {}): Promise<QueueFileHead & { id: string; queue: QueueName }> {
    return this.serial(id, async () => {
      const e = this.entry(id);
      const read = this.reads.get(id);
      this.reads.delete(id);
      if (opts.statesFromIndex) {
        const h = readEnvelopeSync(this.path(e.queue, id), true, read);
        if (h.whole) this.keepWhole(id, h.whole, h);
        const states = Array.from(e.status, (c) => ({ status: c === 'D' ? ('delivered' as const) : c === 'B' ? ('bounced' as const) : ('pending' as const) }));
        // Spelled out, not spread: this runs once per activated message (object spread and rest cost
        // a new hidden class each time in V8's profile of a drain).
        return {
          envelope: h.envelope,
          messageSize: h.messageSize,
          messageId: h.messageId,
          contentOffset: h.contentOffset,
          endOffset: h.endOffset,
          fileSize: h.fileSize,
          states,
          retry: { ...e.retry },
          journalOffset: e.journalOffset,
          validLength: e.fileSize,
          torn: false,
          id,
          queue: e.queue,
        };
      }
      const { whole, ...h } = readQueueHeadSync(this.path(e.queue, id), true);
      if (whole) this.keepWhole(id, whole, h);
      return { ...h, id, queue: e.queue };
    });
  }

  /**
   * Small files load() read whole, kept for the content read that follows (the delivery): one
   * read of the file per delivery instead of two. At most WHOLE_BYTES_KEPT, oldest dropped first;
   * a message's entry goes with its first content read, deferral or removal. The content part of
   * a queue file never changes once committed, so the kept bytes cannot go stale; the head's
   * offsets, parsed from the same bytes, are kept with them, so the content read does not parse
   * the head again.
   */
  private readonly wholeFiles = new WholeFiles();

  /**
   * What the helper thread read of a file it moved into active/, for the load() that follows (at
   * most READS_KEPT). Taken by that load, or dropped with the message's deferral or removal.
   */
  private readonly reads = new Map<string, Buffer>();

  private keepRead(id: string, bytes: Buffer): void {
    keepBounded(this.reads, id, bytes);
  }

  private keepWhole(id: string, bytes: Buffer, h: { contentOffset: number; endOffset: number }): void {
    this.wholeFiles.set(id, { bytes: Buffer.from(bytes), contentOffset: h.contentOffset, endOffset: h.endOffset });
  }

  /**
   * The message content as stored (CRLF lines), in chunks. Verifies the file's checksum at the end
   * and throws QueueFileError when it does not match (the caller defers and moves it to corrupt/).
   */
  content(id: string): AsyncIterable<Buffer> {
    const e = this.entry(id);
    const whole = this.wholeFiles.take(id);
    return readContent(this.path(e.queue, id), whole);
  }

  /** The content as a Readable stream. */
  contentStream(id: string): Readable {
    return Readable.from(this.content(id), { objectMode: false });
  }

  // ---------------------------------------------------------------- state updates (journal.ts)

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
    return this.serial(id, async () => {
      const e = this.entry(id);
      // A recipient left pending loses nothing but a reason text if this record is lost in a
      // crash (see defer()). Delivered and bounced results are fsync'd now: losing them would
      // deliver or bounce twice.
      await this.appendUpdate(e, recipientUpdate(e, idx, s, result), { sync: s !== 'pending' });
    });
  }

  /**
   * After an attempt that left recipients to retry: count the attempt, set the next attempt time
   * and reason, and move the file to deferred/ (unless it is on hold).
   */
  defer(id: string, nextAttempt: number, reason: string): Promise<void> {
    return this.serial(id, async () => {
      const e = this.entry(id);
      // Not fsync'd (nor the pending recipients' reasons before it): lost in a crash, the message
      // is only tried again sooner — its age, not this record, sets the backoff — as with
      // Postfix's qmgr, which defers without an fsync. The deferral path waits for no disk.
      this.wholeFiles.delete(id);
      this.reads.delete(id);
      await this.appendUpdate(e, { t: Date.now(), q: { nextAttempt, attempts: e.retry.attempts + 1, lastReason: reason } }, { sync: false });
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

  private async appendUpdate(e: QueueEntry, u: StateUpdate, opts: { sync?: boolean } = {}): Promise<void> {
    await appendUpdate(this.store, e, u, opts);
    this.emit('updated', e.id, e);
  }

  // ---------------------------------------------------------------- moves

  moveTo(id: string, queue: QueueName): Promise<void> {
    if (queue === 'incoming') return Promise.reject(new QueueError(`${id}: cannot move a committed message to incoming`, 'EINVAL'));
    return this.serial(id, async () => this.moveUnlocked(this.entry(id), queue));
  }

  private async moveUnlocked(e: QueueEntry, to: QueueName): Promise<void> {
    const from = e.queue;
    if (from === to) return;
    // Off the event loop: a rename waits for the journal while fsyncs commit it (queue-format.md).
    // Into active/, the queue manager reads the file next (load): the helper thread reads it too.
    if (to === 'active') {
      const read = await this.fileOps.renameAndRead(this.path(from, e.id), this.path(to, e.id), FIRST_READ);
      if (read) this.keepRead(e.id, read);
    } else await this.fileOps.rename(this.path(from, e.id), this.path(to, e.id));
    // A move between the two scheduling queues (active ↔ deferred) needs no directory fsync, as in
    // Postfix's qmgr: the message's state (recipients, retry time) lives in the file; a rename is
    // one atomic journal transaction, so after a crash the name is in
    // exactly one of the two folders, and both are scanned at start-up. Losing the move only
    // changes when the message is tried next. Any other move (hold, corrupt: an administrator's
    // or a safety decision) is made durable in both directories.
    if (!(SCHEDULING.has(from) && SCHEDULING.has(to))) {
      await Promise.all([this.syncDir(to), this.syncDir(from)]);
    }
    e.queue = to;
    if (to === 'active') {
      let nrcpt = 0;
      for (let i = 0; i < e.status.length; i++) if (e.status.charCodeAt(i) === 0x50 /* P */) nrcpt++;
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

  /**
   * Remove a message: unlink (or recycle, below), fsync the directory, log `ID: removed`. `durable: false` skips the
   * directory fsync — for a message whose every recipient was just delivered, as Postfix's qmgr
   * removes it: after a power failure in the next seconds it may come back and be delivered a
   * second time, never lost. A process crash does not bring it back (the unlink is in the
   * kernel). An administrator's delete, and a message whose recipients were bounced (the notice
   * is queued), are always made durable. `recycle`: the file may go to recycle/ (default: unless
   * it is in active/, where a delivery may still read it; the queue manager's own removal after
   * the message's last delivery says yes).
   */
  remove(id: string, service = 'qmgr', opts: { durable?: boolean; recycle?: boolean } = {}): Promise<void> {
    return this.serial(id, async () => {
      const e = this.entry(id);
      this.wholeFiles.delete(id);
      this.reads.delete(id);
      const from = this.path(e.queue, id);
      // A file in active/ may still be read by a delivery (an administrator's delete): unlinked,
      // so the delivery keeps reading its own content. Recycled otherwise (recycle.ts).
      const kept = (opts.recycle ?? e.queue !== 'active') ? this.pool.place() : null;
      if (kept) {
        await this.fileOps.recycle(from, kept, !keepsBytes(e.fileSize));
        this.pool.offer(kept);
      } else await this.fileOps.unlink(from);
      if (opts.durable !== false) await this.syncDir(e.queue);
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
}
