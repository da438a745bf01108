// Write-only access to the queue for the smtpd worker processes (Postfix's cleanup, run inside
// each smtpd worker): the same transactions as the Queue's (writer.ts: temporary file, fsync,
// rename, directory fsync before commit resolves), without the index, the lock or recovery,
// which belong to the one queue manager process. Each committed message is announced through
// `onCommitted` (the worker sends it to the queue manager); each worker numbers its ids from its
// own range (`slot`), so ids stay unique across processes.
// Trusts its callers as the Queue does; trusts the queue manager to pick up what it announces.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { reply, SmtpError, type Envelope } from '../mail/index.js';
import { maillog as defaultMaillog, type Maillog } from '../log/index.js';
import { QUEUE_NAMES, type QueueName } from './file.js';
import { DirSyncer } from './dirsync.js';
import { QueueIds } from './id.js';
import { writeAll, type WriteFn } from './disk.js';
import type { QueueEntry } from './entry.js';
import { FileTransaction, type BeginOptions, type QueueTransaction, type WriterStore } from './writer.js';
import { logClient, logMessageId } from './log.js';
import { RecyclePool, RECYCLE_FOLDER } from './recycle.js';

export interface QueueWriterOptions {
  queueDirectory: string;
  /** This writer's id range: 1..N for smtpd workers (0 is the queue manager's). */
  slot: number;
  messageSizeLimit?: number;
  /** backstop_queue_file_recycle_limit: take emptied files from recycle/ (recycle.ts); 0 = never. Default 0. */
  recycleLimit?: number;
  maillog?: Maillog;
  wrapWrite?: (write: WriteFn) => WriteFn;
  /** The message is durable in its queue; tell the queue manager. */
  onCommitted(entry: QueueEntry): void;
}

export class QueueWriter {
  readonly dir: string;
  private readonly ids: QueueIds;
  private readonly syncers = new Map<QueueName, DirSyncer>();
  private tmpCounter = 0;
  private readonly store: WriterStore;
  private closed = false;

  constructor(opts: QueueWriterOptions) {
    this.dir = opts.queueDirectory;
    this.ids = new QueueIds(() => false, opts.slot);
    const maillog = opts.maillog ?? defaultMaillog;
    const log = { smtpd: maillog.logger('smtpd'), cleanup: maillog.logger('cleanup') };
    for (const q of QUEUE_NAMES) {
      mkdirSync(join(this.dir, q), { recursive: true });
      this.syncers.set(q, new DirSyncer(join(this.dir, q)));
    }
    const pool = new RecyclePool(this.dir, opts.recycleLimit ?? 0);
    if (pool.limit > 0) mkdirSync(join(this.dir, RECYCLE_FOLDER), { recursive: true });
    this.store = {
      write: opts.wrapWrite ? opts.wrapWrite(writeAll) : writeAll,
      sizeLimit: opts.messageSizeLimit ?? 0,
      path: (queue, id) => join(this.dir, queue, id),
      syncDir: (queue) => this.syncers.get(queue)!.sync(),
      tmpPath: () => join(this.dir, 'incoming', `t${process.pid}.${++this.tmpCounter}`),
      reuse: (path) => pool.take(path),
      committed: (entry: QueueEntry, env: Envelope, messageId: string | undefined, client: boolean) => {
        this.ids.release(entry.id);
        if (client) logClient(log.smtpd, entry.id, env.client.name, env.client.address);
        logMessageId(log.cleanup, entry.id, messageId);
        opts.onCommitted(entry);
      },
      release: (id) => this.ids.release(id),
    };
  }

  /** As Queue.begin(): throws SmtpError 451 4.3.0 when closed, 554 5.5.1 without recipients. */
  begin(env: Envelope, opts: BeginOptions = {}): QueueTransaction {
    if (this.closed) throw new SmtpError(reply(451, '4.3.0', 'Error: queue file write error'), 'queue is closed');
    if (env.recipients.length === 0) throw new SmtpError(reply(554, '5.5.1', 'Error: no valid recipients'));
    return new FileTransaction(this.store, this.ids.reserve(), env, opts.logClient ?? true);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.syncers.values()) await s.close();
  }
}
