// The queue manager's view of the shared PostgreSQL queue (docs/cluster.md, "Delivery across
// nodes"): a SchedulingQueue whose index holds the messages this node has claimed (leased) and the
// ones it deferred itself (lease given up, kept to know what its destinations wait for). The claim
// loop, lease renewal and LISTEN live in claimer.ts; this file turns the queue manager's calls
// into fenced statements (leases.ts): delivered and bounced recipients are written at once, the
// end of an attempt (finishAttempt) gives the lease up, a removal deletes the row — each only
// while this node still holds the lease. A message whose lease was lost, or whose result cannot be
// written (the database away), leaves the index (event `removed`) without a warning per message:
// its lease runs out and it is claimed again, here or on another node. Trusts PostgreSQL and the
// lease; trusts the queue manager to work on one message at a time.

import { EventEmitter } from 'node:events';
import { maillog as defaultMaillog, type Maillog, type Logger } from '../../log/index.js';
import type { Envelope } from '../../mail/index.js';
import { QUEUE_NAMES, type QueueName, type RecipientState, type RetryState } from '../file.js';
import { QueueError, STATUS_CHAR, type QueueEntry, type QueueEvents } from '../entry.js';
import type { RecipientResult } from '../journal.js';
import { logQueueActive, logRemoved } from '../log.js';
import type { LoadedMessage, SchedulingQueue } from '../scheduling.js';
import type { BeginOptions, QueueTransaction } from '../writer.js';
import { Claimer } from './claimer.js';
import type { PgConfig } from './config.js';
import { claimOne, finishAttempt, flushDomainRows, recordStatus, releaseLeases, removeLeased, type ClaimedMessage, type DeliveryState } from './leases.js';
import { PgQueueStore } from './store.js';

export interface PgQueueOptions {
  config: PgConfig;
  /** This node's name when the configuration has no node_name ($myhostname). */
  nodeName: string;
  /** queue_directory: still this node's folder (control socket, pid, the status view's counts). */
  dir: string;
  /** backstop_queue_lease_time, ms. */
  leaseMs: number;
  /** Messages claimed per statement (default 100); at most `maxHeld` leased at once (default 500). */
  batch?: number;
  maxHeld?: number;
  /** How often due messages are looked for when nothing announces them. Default 1 s. */
  pollMs?: number;
  messageSizeLimit?: number;
  maillog?: Maillog;
}

interface Held {
  entry: QueueEntry;
  head: LoadedMessage;
  leased: boolean;
}

export class PgQueue extends EventEmitter<QueueEvents> implements SchedulingQueue {
  readonly dir: string;
  readonly store: PgQueueStore;
  private readonly held = new Map<string, Held>();
  private readonly claimer: Claimer;
  private readonly maillog: Maillog;
  private readonly log: Logger;
  private readonly leaseMs: number;
  private readonly flushFns: Array<(payload: string) => void> = [];
  private readonly maxHeld: number;

  private constructor(opts: PgQueueOptions) {
    super();
    this.dir = opts.dir;
    this.leaseMs = opts.leaseMs;
    this.maxHeld = opts.maxHeld ?? 500;
    this.maillog = opts.maillog ?? defaultMaillog;
    this.log = this.maillog.logger('qmgr');
    this.store = PgQueueStore.start({
      config: opts.config,
      nodeName: opts.nodeName,
      slot: 0,
      messageSizeLimit: opts.messageSizeLimit,
      maillog: this.maillog,
      outageEffect: 'deliveries pause and new mail gets 451',
      // A notice this queue manager queued: claim it now rather than at the next poll.
      onCommitted: () => this.claimer.soon(),
    });
    this.claimer = new Claimer({
      store: this.store,
      leaseMs: opts.leaseMs,
      batch: opts.batch ?? 100,
      maxHeld: this.maxHeld,
      pollMs: opts.pollMs ?? 1000,
      leasedIds: () => [...this.held].filter(([, h]) => h.leased).map(([id]) => id),
      claimed: (m) => this.claimed(m),
      lost: (id) => this.drop(id),
      flush: (payload) => this.flushFns.forEach((f) => f(payload)),
      log: this.log,
    });
  }

  /** The queue at once; the database is reached (and reached again) in the background. */
  static open(opts: PgQueueOptions): PgQueue {
    const q = new PgQueue(opts);
    q.claimer.start();
    return q;
  }

  /** Listen for flush requests (NOTIFY backstop_flush): '' = everything, else a domain. */
  onFlush(fn: (payload: string) => void): void {
    this.flushFns.push(fn);
  }

  /**
   * Stop claiming; give back the leases still held (the queue manager has stopped: nothing of them
   * is in flight), so that other nodes need not wait for them to run out. Then close the store.
   */
  async close(): Promise<void> {
    await this.claimer.stop();
    const ids = [...this.held].filter(([, h]) => h.leased).map(([id]) => id);
    if (ids.length && this.store.ready) {
      try {
        const client = await this.store.connect();
        try {
          await releaseLeases(client, this.store.nodeName, ids);
        } finally {
          client.release();
        }
      } catch {
        // The database is away: the leases run out by themselves.
      }
    }
    await this.store.close();
  }

  logger(service: string): Logger {
    return this.maillog.logger(service);
  }

  begin(env: Envelope, opts?: BeginOptions): QueueTransaction {
    return this.store.begin(env, opts);
  }

  /** An smtpd worker of this node committed a message: claim it now. */
  adopt(_entry: QueueEntry): void {
    this.claimer.soon();
  }

  /**
   * The destination watch saw `domain`'s next hop answer: make its deferred mail due on every node
   * and tell them (they claim it at once). Errors are logged by the store's outage report.
   */
  async flushDomainEverywhere(domain: string): Promise<void> {
    const client = await this.store.connect();
    try {
      await flushDomainRows(client, domain);
      client.release();
    } catch (err) {
      client.release(err instanceof Error ? err : undefined);
      this.store.failed(err);
    }
  }

  // ---------------------------------------------------------------- index

  get(id: string): QueueEntry | undefined {
    return this.held.get(id)?.entry;
  }

  has(id: string): boolean {
    return this.held.has(id);
  }

  get size(): number {
    return this.held.size;
  }

  /** Messages leased here now. */
  get leased(): number {
    let n = 0;
    for (const h of this.held.values()) if (h.leased) n++;
    return n;
  }

  list(queue?: QueueName): QueueEntry[] {
    const out: QueueEntry[] = [];
    for (const h of this.held.values()) if (!queue || h.entry.queue === queue) out.push(h.entry);
    return out.sort((a, b) => a.arrivalTime - b.arrivalTime || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private holding(id: string): Held {
    const h = this.held.get(id);
    if (!h) throw new QueueError(`${id}: no such message in the queue`, 'ENOENT');
    return h;
  }

  async load(id: string): Promise<LoadedMessage> {
    const h = this.holding(id);
    return { ...h.head, states: h.head.states.map((s) => ({ ...s })), retry: { ...h.head.retry }, queue: h.entry.queue };
  }

  content(id: string): AsyncIterable<Buffer> {
    this.holding(id);
    return this.store.readContent(id);
  }

  // ---------------------------------------------------------------- claims

  /** A message claimed by the claim loop (or claimOne): index it as active and announce it. */
  private claimed(m: ClaimedMessage): void {
    const states: RecipientState[] = [...m.status].map((c, i) => {
      const r = m.state.results?.[i] ?? {};
      return { ...r, status: c === 'D' ? 'delivered' : c === 'B' ? 'bounced' : 'pending' };
    });
    const retry: RetryState = {
      nextAttempt: m.nextAttempt.getTime(),
      attempts: m.attempts,
      lastReason: m.state.lastReason,
      delayWarningSent: m.state.delayWarningSent ?? false,
      forcedExpire: m.state.forcedExpire ?? false,
    };
    const env = m.envelope;
    const entry: QueueEntry = {
      id: m.id,
      queue: 'active',
      arrivalTime: env.arrivalTime,
      messageSize: m.messageSize,
      sender: env.sender,
      recipients: env.recipients.map((r) => r.address),
      status: m.status,
      retry,
      fileSize: 0,
      journalOffset: 0,
    };
    const head: LoadedMessage = { id: m.id, queue: 'active', envelope: env, states, retry, messageSize: m.messageSize, messageId: m.messageId ?? undefined };
    const was = this.held.get(m.id);
    this.held.set(m.id, { entry, head, leased: true });
    if (was && was.entry.queue === 'active') return;
    logQueueActive(this.log, m.id, env.sender, m.messageSize, [...m.status].filter((c) => c === 'P').length);
    this.emit('accepted', m.id, entry);
  }

  /** Below half of what it may hold: claim more now if more were due (a draining node keeps busy). */
  private finishedOne(): void {
    if (this.leased < this.maxHeld / 2) this.claimer.more();
  }

  /** Out of the index, quietly (lease lost, result not written, taken by another node). */
  private drop(id: string): void {
    const h = this.held.get(id);
    if (!h) return;
    this.held.delete(id);
    this.emit('removed', id, h.entry.queue);
  }

  /** A database write for a held message: false or a failure drops it (and throws). */
  private async fenced(id: string, what: string, write: (db: import('pg').PoolClient) => Promise<boolean>): Promise<void> {
    let ok: boolean;
    try {
      const client = await this.store.connect();
      try {
        ok = await write(client);
        client.release();
      } catch (err) {
        client.release(err instanceof Error ? err : undefined);
        throw err;
      }
      this.store.worked();
    } catch (err) {
      this.store.failed(err);
      this.drop(id);
      throw new QueueError(`${id}: ${what} not written: ${(err as Error).message}`, 'ENOENT');
    }
    if (!ok) {
      this.log.warning(`${id}: lease lost (another node holds the message now); ${what} not written`);
      this.drop(id);
      throw new QueueError(`${id}: lease lost`, 'ENOENT');
    }
  }

  private stateOf(h: Held): DeliveryState {
    return {
      lastReason: h.head.retry.lastReason,
      delayWarningSent: h.head.retry.delayWarningSent || undefined,
      forcedExpire: h.head.retry.forcedExpire || undefined,
      results: h.head.states.map(({ status: _s, ...rest }) => (Object.keys(rest).length ? rest : null)),
    };
  }

  // ---------------------------------------------------------------- results

  markDelivered(id: string, recipients: number[], result: RecipientResult): Promise<void> {
    return this.mark(id, recipients, 'delivered', result, true);
  }

  markBounced(id: string, recipients: number[], result: RecipientResult): Promise<void> {
    return this.mark(id, recipients, 'bounced', result, true);
  }

  /** Pending recipients' reasons are kept here and written with the end of the attempt. */
  markDeferred(id: string, recipients: number[], result: RecipientResult): Promise<void> {
    return this.mark(id, recipients, 'pending', result, false);
  }

  private async mark(id: string, idx: number[], status: RecipientState['status'], r: RecipientResult, write: boolean): Promise<void> {
    const h = this.holding(id);
    const chars = [...h.entry.status];
    for (const i of idx) {
      if (!Number.isInteger(i) || i < 0 || i >= chars.length) throw new QueueError(`${id}: no recipient ${i}`, 'EINVAL');
      h.head.states[i] = typeof r === 'string' ? { status, reason: r, time: Date.now() } : { status, reason: r.reason, dsn: r.dsn, remoteMta: r.remoteMta, diagnosticCode: r.diagnosticCode, time: Date.now() };
      chars[i] = STATUS_CHAR[status];
    }
    h.entry.status = chars.join('');
    if (write) await this.fenced(id, 'recipient status', (db) => recordStatus(db, this.store.nodeName, id, h.entry.status, this.stateOf(h)));
    this.emit('updated', id, h.entry);
  }

  /** The end of an attempt with recipients left: written with the next attempt time, lease given up. */
  async defer(id: string, nextAttempt: number, reason: string): Promise<void> {
    const h = this.holding(id);
    h.head.retry = { ...h.head.retry, nextAttempt, attempts: h.head.retry.attempts + 1, lastReason: reason };
    await this.fenced(id, 'deferral', (db) =>
      finishAttempt(db, this.store.nodeName, id, { status: h.entry.status, nextAttempt: new Date(nextAttempt), state: this.stateOf(h) }),
    );
    h.leased = false;
    this.finishedOne();
    h.entry.retry = h.head.retry;
    const from = h.entry.queue;
    h.entry.queue = 'deferred';
    this.emit('updated', id, h.entry);
    if (from !== 'deferred') this.emit('moved', id, from, 'deferred');
  }

  /** Kept here; written with the end of the attempt. */
  async updateRetry(id: string, patch: Partial<RetryState>): Promise<void> {
    const h = this.holding(id);
    h.head.retry = { ...h.head.retry, ...patch };
    h.entry.retry = h.head.retry;
    this.emit('updated', id, h.entry);
  }

  markDelayWarningSent(id: string): Promise<void> {
    return this.updateRetry(id, { delayWarningSent: true });
  }

  /**
   * To active: a message deferred here is claimed again (whatever its next attempt time: a flush
   * or a destination back); held elsewhere or gone, it leaves the index. Other moves (hold) are
   * the administration's, on the shared queue.
   */
  async moveTo(id: string, queue: QueueName): Promise<void> {
    const h = this.holding(id);
    if (queue !== 'active' || !QUEUE_NAMES.includes(queue)) throw new QueueError(`${id}: moving to ${queue} is done on the shared queue, not by the queue manager`, 'EINVAL');
    if (h.entry.queue === 'active' && h.leased) return;
    let m: ClaimedMessage | null = null;
    try {
      const client = await this.store.connect();
      try {
        m = await claimOne(client, this.store.nodeName, id, this.leaseMs);
        client.release();
      } catch (err) {
        client.release(err instanceof Error ? err : undefined);
        throw err;
      }
    } catch (err) {
      this.store.failed(err);
    }
    if (!m) return this.drop(id);
    const from = h.entry.queue;
    this.claimed(m);
    this.emit('moved', id, from, 'active');
  }

  /** Every recipient done: the row (and its content) goes, if this node still holds the lease. */
  async remove(id: string, service = 'qmgr'): Promise<void> {
    const h = this.holding(id);
    await this.fenced(id, 'removal', (db) => removeLeased(db, this.store.nodeName, id));
    this.held.delete(id);
    this.finishedOne();
    logRemoved(service === 'qmgr' ? this.log : this.maillog.logger(service), id);
    this.emit('removed', id, h.entry.queue);
  }
}
