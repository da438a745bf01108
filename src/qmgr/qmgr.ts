// The queue manager (Postfix's qmgr): takes committed messages from the queue, groups their
// recipients per next-hop destination, runs deliveries through the SMTP client within each
// destination's concurrency window (slow start, dead list), writes every per-recipient result
// through the queue before the next attempt, retries deferred mail with Postfix's backoff, returns
// expired mail, sends bounce and delay notices through the queue like any other message, and —
// beyond Postfix — watches unreachable destinations and flushes them the moment they answer.
// Trusts the queue for durability, the smtp module for routing and per-recipient results, and the
// notice builder for who may receive a notice. Owns no files and no sockets except the watch probe.

import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { maillog, type Logger } from '../log/index.js';
import type { Queue, QueueEntry } from '../queue/index.js';
import {
  chooseNextHop,
  deliver as smtpDeliver,
  logDelivery,
  resolveNextHop,
  type DeliveryOptions,
  type MxAddress,
  type NextHop,
  type OutboundMessage,
  type RecipientResult,
} from '../smtp/index.js';
import { backoffDelay, delayWarningDue, isExpired, lifetimeFor } from './backoff.js';
import { Destination, type Job } from './destination.js';
import type { Flusher, NoticeBuilder, NoticeRecipient, QmgrStats } from './types.js';
import { probeGreeting } from './watch.js';

/** Parameters with Postfix's names; times in seconds. */
export interface QmgrParams {
  default_destination_concurrency_limit: number;
  initial_destination_concurrency: number;
  default_destination_recipient_limit: number;
  default_destination_concurrency_failed_cohort_limit: number;
  minimal_backoff_time: number;
  maximal_backoff_time: number;
  queue_run_delay: number;
  maximal_queue_lifetime: number;
  bounce_queue_lifetime: number;
  delay_warning_time: number;
  qmgr_message_active_limit: number;
  backstop_destination_probe_interval: number;
  backstop_destination_watch: boolean;
  /** Domains eligible for ETRN/postqueue -s even without queued mail (parent domains match subdomains). */
  fast_flush_domains: string[];
}

export const QMGR_DEFAULTS: QmgrParams = {
  default_destination_concurrency_limit: 20,
  initial_destination_concurrency: 5,
  default_destination_recipient_limit: 50,
  default_destination_concurrency_failed_cohort_limit: 1,
  minimal_backoff_time: 300,
  maximal_backoff_time: 4000,
  queue_run_delay: 300,
  maximal_queue_lifetime: 5 * 86400,
  bounce_queue_lifetime: 5 * 86400,
  delay_warning_time: 0,
  qmgr_message_active_limit: 20000,
  backstop_destination_probe_interval: 10,
  backstop_destination_watch: true,
  fast_flush_domains: [],
};

export type DeliverFn = (msg: OutboundMessage, opts: DeliveryOptions) => Promise<RecipientResult[]>;
export type ProbeFn = (addr: MxAddress, timeoutMs: number) => Promise<boolean>;

export interface QmgrOptions {
  queue: Queue;
  /** Routing, session options and connection cache of the SMTP client. */
  delivery: DeliveryOptions;
  /** The delivery function (default: the smtp module's deliver). */
  deliver?: DeliverFn;
  /** Builds bounce and delay notices; without it no notice is sent (logged as a warning). */
  notices?: NoticeBuilder;
  params?: Partial<QmgrParams>;
  /** Clock (ms since the epoch) for retry, lifetime and dead-list decisions; default Date.now. */
  now?: () => number;
  /** Random source for the watch jitter; default Math.random. */
  random?: () => number;
  /** Greeting probe of the destination watch; default: TCP connect, read 220, QUIT. */
  probe?: ProbeFn;
  log?: Logger;
}

export interface QmgrEvents {
  /** A watched destination answered its probe: `domain` has mail queued for `nexthop` (host[ip]:port). */
  destinationUp: [domain: string, nexthop: string];
  /** A message left the queue (every recipient done, or returned). */
  done: [id: string];
}

interface ActiveMsg {
  id: string;
  entry: QueueEntry;
  head: Awaited<ReturnType<Queue['load']>>;
  activeTime: number;
  /** Outstanding work: jobs plus one while activation is still grouping. */
  work: number;
  /** Recipients that bounced in this pass (notice not yet queued). */
  bounced: Map<number, NoticeRecipient>;
  /** Destination key of each pending recipient. */
  dests: Map<number, string>;
  lastReason: string;
  gone: boolean;
  /** postsuper -r arrived while it was being delivered: due again at once. */
  requeued: boolean;
  /** Our own queue.defer() is moving it to deferred/ (not a postsuper -r). */
  deferring: boolean;
}

const ACTIVATION_PARALLEL = 32;

/** Domain list match as Postfix's domain lists do (parent_domain_matches_subdomains). */
export function domainListMatch(domain: string, list: string[]): boolean {
  const d = domain.toLowerCase().replace(/\.$/, '');
  for (const raw of list) {
    const p = raw.toLowerCase().replace(/\.$/, '');
    if (!p || p.includes(':')) continue;
    if (p.startsWith('.')) {
      if (d.endsWith(p)) return true;
    } else if (d === p || d.endsWith('.' + p)) return true;
  }
  return false;
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase().replace(/\.$/, '');
}

/** Postfix's rule for a "site" failure: the destination, not the recipient, failed. */
function isSiteFailure(results: RecipientResult[]): boolean {
  return results.length > 0 && results.every((r) => r.status === 'deferred' && (r.relay === 'none' || r.dsn.startsWith('4.4.')));
}

export class Qmgr extends EventEmitter<QmgrEvents> implements Flusher {
  readonly params: QmgrParams;
  private readonly queue: Queue;
  private readonly delivery: DeliveryOptions;
  private readonly deliverFn: DeliverFn;
  private readonly notices?: NoticeBuilder;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly probeFn: ProbeFn;
  private readonly log: Logger;
  private readonly dests = new Map<string, Destination>();
  private readonly active = new Map<string, ActiveMsg>();
  private readonly activation: Array<{ id: string; flush: boolean }> = [];
  private readonly queued = new Map<string, boolean>();
  /** Deferred message → destination keys of its pending recipients. */
  private readonly deferredDests = new Map<string, string[]>();
  private readonly tasks = new Set<Promise<unknown>>();
  private activating = 0;
  private running = false;
  private scanTimer: NodeJS.Timeout | null = null;
  private readonly unsubscribe: Array<() => void> = [];
  private readonly counters = { delivered: 0, bounced: 0, deferred: 0, removed: 0 };
  private readonly peaks = new Map<string, number>();

  constructor(opts: QmgrOptions) {
    super();
    this.params = { ...QMGR_DEFAULTS, ...opts.params };
    this.queue = opts.queue;
    this.delivery = opts.delivery;
    this.deliverFn = opts.deliver ?? smtpDeliver;
    this.notices = opts.notices;
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    const bind = opts.delivery.session.bindAddress;
    this.probeFn = opts.probe ?? ((a, t) => probeGreeting(a, t, bind));
    this.log = opts.log ?? maillog.logger('qmgr');
  }

  // ------------------------------------------------------------------ life cycle

  /** Start: schedule what recovery left in active/, index deferred mail, start the queue scans. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    // Mail accepted into hold/ (access(5) HOLD) waits for postsuper -H; deferred/ for its time.
    const onAccepted = (id: string, e?: QueueEntry) => { if (!e || e.queue === 'active') this.onAccepted(id); };
    const onMoved = (id: string, _from: string, to: string) => this.onMoved(id, to);
    const onRemoved = (id: string) => this.forgetDeferred(id);
    // postsuper -r on mail already in deferred/ changes only its retry time: due now.
    const onUpdated = (id: string, e: QueueEntry) => {
      if (e.queue === 'deferred' && e.retry.nextAttempt === 0 && !this.active.has(id)) this.enqueue(id, false);
    };
    this.queue.on('updated', onUpdated);
    this.queue.on('accepted', onAccepted);
    this.queue.on('moved', onMoved);
    this.queue.on('removed', onRemoved);
    this.unsubscribe.push(
      () => this.queue.off('accepted', onAccepted),
      () => this.queue.off('moved', onMoved),
      () => this.queue.off('removed', onRemoved),
      () => this.queue.off('updated', onUpdated),
    );
    for (const e of this.queue.list('active')) this.enqueue(e.id, false);
    const now = this.now();
    for (const e of this.queue.list('deferred')) {
      if (e.retry.nextAttempt <= now) this.enqueue(e.id, false);
      else await this.indexDeferred(e);
    }
    this.scheduleScan();
  }

  /** Stop scheduling; waits (bounded) for deliveries in flight to write their results. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.running = false;
    if (this.scanTimer) clearTimeout(this.scanTimer);
    this.scanTimer = null;
    for (const u of this.unsubscribe.splice(0)) u();
    for (const d of this.dests.values()) {
      if (d.watchTimer) clearTimeout(d.watchTimer);
      d.watchTimer = null;
    }
    this.activation.length = 0;
    this.queued.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.tasks]),
      new Promise((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    await this.delivery.cache?.closeAll();
  }

  /** A message was committed to the queue: deliver it now unless its destination is dead. */
  onAccepted(id: string): void {
    this.enqueue(id, false);
  }

  // ------------------------------------------------------------------ flush (ETRN, postqueue)

  /** postqueue -f: every deferred message now, dead list ignored. */
  async flushAll(): Promise<void> {
    this.log.info('flush all deferred mail');
    for (const d of this.dests.values()) if (d.isDead(this.now())) d.revive();
    for (const e of this.queue.list('deferred')) this.enqueue(e.id, true);
  }

  /**
   * ETRN / postqueue -s: deferred mail with a recipient in `domain` now. Eligible: a domain in
   * fast_flush_domains, or any domain that has mail in the queue (which covers permit_mx_backup
   * domains; Postfix's ETRN misses those).
   */
  async flushDomain(domain: string): Promise<boolean> {
    const d = domain.toLowerCase().replace(/\.$/, '').replace(/^\[(.*)\]$/, '$1');
    const ids: string[] = [];
    let hasMail = false;
    for (const e of this.queue.list()) {
      if (e.queue === 'corrupt') continue;
      let match = false;
      for (let i = 0; i < e.recipients.length; i++) if (e.status[i] === 'P' && domainOf(e.recipients[i]) === d) match = true;
      if (!match) continue;
      hasMail = true;
      if (e.queue === 'deferred') ids.push(e.id);
    }
    if (!hasMail && !domainListMatch(d, this.params.fast_flush_domains)) return false;
    for (const dest of this.dests.values()) if (dest.domains.has(d) && dest.isDead(this.now())) dest.revive();
    this.log.info(`flush domain ${d}: ${ids.length} deferred message${ids.length === 1 ? '' : 's'}`);
    for (const id of ids) this.enqueue(id, true);
    return true;
  }

  stats(): QmgrStats {
    let ready = 0;
    let inflight = 0;
    const destinations: QmgrStats['destinations'] = [];
    for (const d of this.dests.values()) {
      ready += d.ready.length;
      inflight += d.inflight;
      destinations.push({ key: d.key, window: d.window, inflight: d.inflight, ready: d.ready.length, dead: d.isDead(this.now()), deferred: d.deferred.size, peak: this.peaks.get(d.key) ?? 0 });
    }
    return { active: this.active.size, ready, inflight, ...this.counters, destinations };
  }

  // ------------------------------------------------------------------ activation

  private track<T>(p: Promise<T>): Promise<T> {
    this.tasks.add(p);
    void p.finally(() => this.tasks.delete(p)).catch(() => undefined);
    return p;
  }

  private enqueue(id: string, flush: boolean): void {
    if (!this.running) return;
    if (this.active.has(id)) return;
    if (this.queued.has(id)) {
      if (flush) this.queued.set(id, true);
      return;
    }
    this.queued.set(id, flush);
    this.activation.push({ id, flush });
    this.pumpActivation();
  }

  private pumpActivation(): void {
    while (
      this.running &&
      this.activating < ACTIVATION_PARALLEL &&
      this.activation.length &&
      this.active.size + this.activating < this.params.qmgr_message_active_limit
    ) {
      const item = this.activation.shift()!;
      const flush = this.queued.get(item.id) ?? item.flush;
      this.queued.delete(item.id);
      this.activating++;
      void this.track(
        this.activate(item.id, flush)
          .catch((err) => this.log.warning(`${item.id}: activation failed: ${(err as Error).message}`))
          .finally(() => {
            this.activating--;
            this.pumpActivation();
          }),
      );
    }
  }

  private async activate(id: string, flush: boolean): Promise<void> {
    const entry = this.queue.get(id);
    if (!entry || entry.queue === 'hold' || entry.queue === 'corrupt' || entry.queue === 'incoming' || this.active.has(id)) return;
    this.forgetDeferred(id);
    const msg: ActiveMsg = { id, entry, head: undefined as never, activeTime: Date.now(), work: 1, bounced: new Map(), dests: new Map(), lastReason: '', gone: false, requeued: false, deferring: false };
    this.active.set(id, msg);
    try {
      if (entry.queue !== 'active') await this.queue.moveTo(id, 'active');
      msg.head = await this.queue.load(id);
    } catch (err) {
      this.active.delete(id);
      throw err;
    }
    const env = msg.head.envelope;
    const groups = new Map<string, { dest: Destination; idx: number[] }>();
    for (let i = 0; i < env.recipients.length; i++) {
      if (msg.head.states[i].status !== 'pending') continue;
      const address = env.recipients[i].address;
      const hop = await chooseNextHop(address, this.delivery).catch((err: Error) => ({ dsn: '4.3.5', text: `mail system configuration error: ${err.message}` }));
      if ('dsn' in hop) {
        await this.immediate(msg, [i], hop.dsn, hop.text);
        continue;
      }
      const dest = this.destination(hop);
      dest.domains.add(domainOf(address));
      msg.dests.set(i, dest.key);
      const g = groups.get(dest.key) ?? { dest, idx: [] };
      g.idx.push(i);
      groups.set(dest.key, g);
    }
    const limit = Math.max(1, this.params.default_destination_recipient_limit);
    for (const { dest, idx } of groups.values()) {
      if (flush && dest.isDead(this.now())) dest.revive();
      for (let k = 0; k < idx.length; k += limit) {
        dest.ready.push({ id, rcpts: idx.slice(k, k + limit), flush });
        msg.work++;
      }
    }
    for (const { dest } of groups.values()) this.pumpDest(dest);
    await this.workDone(msg);
  }

  private destination(hop: NextHop): Destination {
    let d = this.dests.get(hop.key);
    if (!d) {
      d = new Destination(hop, {
        concurrencyLimit: this.params.default_destination_concurrency_limit,
        initialConcurrency: this.params.initial_destination_concurrency,
        failedCohortLimit: this.params.default_destination_concurrency_failed_cohort_limit,
      });
      this.dests.set(hop.key, d);
    }
    return d;
  }

  /** A result decided without a delivery (routing failure, dead destination): log it and record it. */
  private async immediate(msg: ActiveMsg, idx: number[], dsn: string, text: string): Promise<void> {
    const env = msg.head.envelope;
    const now = Date.now();
    const status = dsn.startsWith('5') ? 'bounced' : 'deferred';
    for (const i of idx) {
      const r = env.recipients[i];
      const s = (ms: number) => Math.max(0, ms) / 1000;
      logDelivery(this.log, {
        queueId: msg.id,
        recipient: r.address,
        origRecipient: r.orcpt?.replace(/^rfc822;/i, ''),
        relay: 'none',
        delays: { beforeActive: s(msg.activeTime - env.arrivalTime), inActive: s(now - msg.activeTime), setup: 0, transmission: 0, total: s(now - env.arrivalTime) },
        dsn,
        status,
        text,
      }, this.delivery.delayResolution ?? 2);
    }
    if (status === 'bounced') {
      for (const i of idx) msg.bounced.set(i, { ...env.recipients[i], dsn, text });
    } else {
      msg.lastReason = text;
      this.counters.deferred += idx.length;
      await this.queue.markDeferred(msg.id, idx, { reason: text, dsn }).catch((err) => this.lost(msg, err));
    }
  }

  // ------------------------------------------------------------------ deliveries

  private pumpDest(dest: Destination): void {
    if (dest.isDead(this.now())) {
      // The dead list: defer without a connection attempt, as Postfix's qmgr does.
      const all = dest.ready.splice(0);
      for (const job of all) {
        if (job.flush) dest.ready.push(job);
        else void this.track(this.suspended(dest, job));
      }
      if (dest.ready.length === 0) return;
    }
    while (this.running && dest.ready.length && dest.slots() > 0) {
      const job = dest.ready.shift()!;
      dest.inflight++;
      this.peaks.set(dest.key, Math.max(this.peaks.get(dest.key) ?? 0, dest.inflight));
      void this.track(this.runJob(dest, job));
    }
  }

  private async suspended(dest: Destination, job: Job): Promise<void> {
    const msg = this.active.get(job.id);
    if (!msg) return;
    try {
      await this.immediate(msg, job.rcpts, dest.deadDsn || '4.4.1', `delivery temporarily suspended: ${dest.deadReason}`);
    } finally {
      await this.workDone(msg);
    }
  }

  private async runJob(dest: Destination, job: Job): Promise<void> {
    const msg = this.active.get(job.id);
    if (!msg) {
      dest.inflight--;
      this.pumpDest(dest);
      return;
    }
    const env = msg.head.envelope;
    let results: RecipientResult[];
    try {
      if (msg.gone || !this.queue.has(msg.id)) {
        msg.gone = true;
        return;
      }
      const out: OutboundMessage = {
        queueId: msg.id,
        sender: env.sender,
        recipients: job.rcpts.map((i) => env.recipients[i]),
        ret: env.ret,
        envid: env.envid,
        smtputf8: env.smtputf8,
        bodyType: env.body === '8BITMIME' ? '8BITMIME' : env.body === '7BIT' ? '7BIT' : undefined,
        body: () => Readable.from(this.queue.content(msg.id), { objectMode: false }),
        size: msg.head.messageSize,
        arrivalTime: env.arrivalTime,
        activeTime: msg.activeTime,
      };
      try {
        results = await this.deliverFn(out, this.delivery);
      } catch (err) {
        // Not the peer's fault (e.g. the queue file became unreadable): defer, not a site failure.
        await this.immediate(msg, job.rcpts, '4.3.0', `delivery temporarily suspended: ${(err as Error).message}`);
        return;
      }
      const now = this.now();
      if (isSiteFailure(results)) {
        const r = results[results.length - 1];
        if (dest.failure(now, r.text, this.params.minimal_backoff_time * 1000)) dest.deadDsn = r.dsn;
      } else dest.success();
      await this.record(msg, job, results);
    } finally {
      dest.inflight--;
      this.pumpDest(dest);
      await this.workDone(msg);
      if (dest.unreachable && dest.deferred.size) this.armWatch(dest);
    }
  }

  /** Writes the results of one delivery through the queue (bounces wait for their notice). */
  private async record(msg: ActiveMsg, job: Job, results: RecipientResult[]): Promise<void> {
    const env = msg.head.envelope;
    const sent: number[] = [];
    const deferred = new Map<string, { idx: number[]; r: RecipientResult }>();
    results.forEach((r, k) => {
      const i = job.rcpts[k];
      if (r.status === 'sent') sent.push(i);
      else if (r.status === 'bounced') msg.bounced.set(i, { ...env.recipients[i], dsn: r.dsn, text: r.text, remoteMta: r.remoteMta, diagnostic: r.diagnostic });
      else {
        const key = `${r.dsn}\0${r.text}`;
        const g = deferred.get(key) ?? { idx: [], r };
        g.idx.push(i);
        deferred.set(key, g);
        msg.lastReason = r.text;
      }
    });
    this.counters.delivered += sent.length;
    for (const i of sent) msg.head.states[i] = { status: 'delivered' };
    // The last piece of work of a message whose every recipient is now delivered: its removal is
    // the durable record, so the separate state write is skipped (one fsync less per message).
    const finalAllSent = msg.work === 1 && msg.bounced.size === 0 && msg.head.states.every((s) => s.status !== 'pending');
    try {
      if (sent.length && !finalAllSent) await this.queue.markDelivered(msg.id, sent, { reason: results[0].text, dsn: '2.0.0' });
      for (const { idx, r } of deferred.values()) {
        this.counters.deferred += idx.length;
        await this.queue.markDeferred(msg.id, idx, { reason: r.text, dsn: r.dsn, remoteMta: r.remoteMta, diagnosticCode: r.diagnostic ? `smtp; ${r.diagnostic}` : undefined });
      }
    } catch (err) {
      this.lost(msg, err);
    }
  }

  private lost(msg: ActiveMsg, err: unknown): void {
    if (!this.queue.has(msg.id)) {
      msg.gone = true; // deleted (postsuper -d) while in flight
      return;
    }
    this.log.warning(`${msg.id}: cannot update queue file: ${(err as Error).message}`);
  }

  private async workDone(msg: ActiveMsg): Promise<void> {
    msg.work--;
    if (msg.work === 0) await this.finish(msg);
  }

  // ------------------------------------------------------------------ end of a pass

  private async finish(msg: ActiveMsg): Promise<void> {
    try {
      await this.finishInner(msg);
    } catch (err) {
      this.lost(msg, err);
    } finally {
      this.active.delete(msg.id);
      this.pumpActivation();
    }
  }

  private async finishInner(msg: ActiveMsg): Promise<void> {
    const entry = this.queue.get(msg.id);
    if (!entry || msg.gone) return;
    const env = msg.head.envelope;
    const states = msg.head.states;
    const now = this.now();
    let pending: number[] = [];
    for (let i = 0; i < states.length; i++) if (states[i].status === 'pending' && !msg.bounced.has(i)) pending.push(i);
    // Fresh per-recipient reasons for pending recipients come from this pass; reload them.
    const lim = { maximalQueueLifetime: this.params.maximal_queue_lifetime, bounceQueueLifetime: this.params.bounce_queue_lifetime };
    if (pending.length && entry.queue !== 'hold' && isExpired(env.sender, env.arrivalTime, now, lim, entry.retry.forcedExpire)) {
      const head = await this.queue.load(msg.id);
      this.log.info(`${msg.id}: from=<${env.sender}>, status=expired, returned to sender`);
      for (const i of pending) {
        const st = head.states[i];
        const forced = entry.retry.forcedExpire;
        msg.bounced.set(i, {
          ...env.recipients[i],
          dsn: forced ? '4.7.0' : st.dsn || '4.4.7',
          text: forced ? 'message is administratively expired' : st.reason || msg.lastReason || 'delivery time expired',
          remoteMta: st.remoteMta,
          diagnostic: st.diagnosticCode?.replace(/^smtp;\s*/i, ''),
        });
      }
      pending = [];
    }
    if (msg.bounced.size) {
      const rcpts = [...msg.bounced.keys()].sort((a, b) => a - b);
      const sent = await this.notify('failure', msg, rcpts.map((i) => msg.bounced.get(i)!));
      if (!sent) {
        // The notice could not be queued: keep the recipients pending so that it is tried again.
        pending = pending.concat(rcpts).sort((a, b) => a - b);
      } else {
        this.counters.bounced += rcpts.length;
        // When the file is removed right after, the removal is the durable record.
        if (pending.length) {
          for (const i of rcpts) {
            const b = msg.bounced.get(i)!;
            await this.queue.markBounced(msg.id, [i], { reason: b.text, dsn: b.dsn, remoteMta: b.remoteMta, diagnosticCode: b.diagnostic ? `smtp; ${b.diagnostic}` : undefined });
          }
        }
      }
      msg.bounced.clear();
    }
    if (!pending.length) {
      await this.queue.remove(msg.id);
      this.counters.removed++;
      this.emit('done', msg.id);
      return;
    }
    if (delayWarningDue(env.arrivalTime, now, this.params.delay_warning_time, entry.retry.delayWarningSent)) {
      const head = await this.queue.load(msg.id);
      const rcpts = pending.map((i) => ({ ...env.recipients[i], dsn: head.states[i].dsn || '4.0.0', text: head.states[i].reason || msg.lastReason, remoteMta: head.states[i].remoteMta, diagnostic: head.states[i].diagnosticCode?.replace(/^smtp;\s*/i, '') }));
      const until = env.arrivalTime + lifetimeFor(env.sender, lim) * 1000;
      if (await this.notify('delay', msg, rcpts, until)) await this.queue.markDelayWarningSent(msg.id);
    }
    const next = msg.requeued ? 0 : now + backoffDelay(env.arrivalTime, now, { minimalBackoffTime: this.params.minimal_backoff_time, maximalBackoffTime: this.params.maximal_backoff_time });
    msg.deferring = true;
    try {
      await this.queue.defer(msg.id, next, msg.lastReason);
    } finally {
      msg.deferring = false;
    }
    const keys = [...new Set(pending.map((i) => msg.dests.get(i)).filter((k): k is string => !!k))];
    this.noteDeferred(msg.id, keys);
    if (msg.requeued) setImmediate(() => this.enqueue(msg.id, false));
  }

  /** Builds and queues a notice; false when it could not be queued (retry later). */
  private async notify(kind: 'failure' | 'delay', msg: ActiveMsg, recipients: NoticeRecipient[], willRetryUntil?: number): Promise<boolean> {
    if (!this.notices) {
      this.log.warning(`${msg.id}: no bounce service: ${kind} notice not sent`);
      return true;
    }
    try {
      const notice = await this.notices.build({ kind, queueId: msg.id, envelope: msg.head.envelope, recipients, content: () => this.queue.content(msg.id), willRetryUntil });
      if (!notice) return true;
      const id = await this.queue.accept(notice.envelope, Readable.from([notice.content]));
      const what = kind === 'failure' ? 'non-delivery' : 'delay';
      const who = msg.head.envelope.sender === '' ? 'postmaster' : 'sender';
      this.queue.logger('bounce').info(`${msg.id}: ${who} ${what} notification: ${id}`);
      return true;
    } catch (err) {
      this.log.warning(`${msg.id}: cannot queue ${kind} notice: ${(err as Error).message}`);
      return false;
    }
  }

  // ------------------------------------------------------------------ deferred mail, scans, watch

  private noteDeferred(id: string, keys: string[]): void {
    this.forgetDeferred(id);
    this.deferredDests.set(id, keys);
    for (const k of keys) {
      const d = this.dests.get(k);
      if (!d) continue;
      d.deferred.add(id);
      if (d.unreachable) this.armWatch(d);
    }
  }

  private forgetDeferred(id: string): void {
    const keys = this.deferredDests.get(id);
    if (!keys) return;
    this.deferredDests.delete(id);
    for (const k of keys) this.dests.get(k)?.deferred.delete(id);
  }

  /** At start-up: find the destinations of a deferred message that is not due yet. */
  private async indexDeferred(e: QueueEntry): Promise<void> {
    const keys = new Set<string>();
    for (let i = 0; i < e.recipients.length; i++) {
      if (e.status[i] !== 'P') continue;
      const hop = await chooseNextHop(e.recipients[i], this.delivery).catch(() => undefined);
      if (!hop || 'dsn' in hop) continue;
      const d = this.destination(hop);
      d.domains.add(domainOf(e.recipients[i]));
      // Mail deferred before the restart: the watch finds out whether its destination is back.
      d.unreachable = true;
      keys.add(d.key);
    }
    this.noteDeferred(e.id, [...keys]);
  }

  private onMoved(id: string, to: string): void {
    if (to !== 'deferred') return;
    const busy = this.active.get(id);
    if (busy) {
      if (!busy.deferring) busy.requeued = true;
      return;
    }
    const e = this.queue.get(id);
    // postsuper -r (due now) and -H (released): schedule or index again.
    if (e && e.retry.nextAttempt <= this.now()) this.enqueue(id, false);
    else if (e) void this.track(this.indexDeferred(e));
  }

  private scheduleScan(): void {
    if (!this.running) return;
    this.scanTimer = setTimeout(() => {
      this.scan();
      this.scheduleScan();
    }, this.params.queue_run_delay * 1000);
    this.scanTimer.unref();
  }

  /** The deferred queue scan: every message whose next attempt is due. */
  scan(): void {
    const now = this.now();
    for (const e of this.queue.list('deferred')) if (e.retry.nextAttempt <= now) this.enqueue(e.id, false);
    // Mail left in active/ that no pass is working on: the end of its last pass could not be
    // written (disk full: markDeferred/defer failed), so nothing else would ever pick it up again.
    for (const e of this.queue.list('active')) if (!this.active.has(e.id)) this.enqueue(e.id, false);
  }

  /**
   * Watch the next hop of `address` although no mail waits for it: verify's probe for the address
   * could not connect, and its DEFER entry should be re-probed the moment the destination answers
   * (destinationUp) instead of after address_verify_negative_refresh_time.
   */
  async watchAddress(address: string): Promise<void> {
    const hop = await chooseNextHop(address, this.delivery).catch(() => undefined);
    if (!hop || 'dsn' in hop) return;
    const dest = this.destination(hop);
    dest.domains.add(domainOf(address));
    dest.unreachable = true;
    dest.watchWanted = true;
    this.armWatch(dest);
  }

  private armWatch(dest: Destination): void {
    if (!this.running || !this.params.backstop_destination_watch || dest.watchTimer || dest.probing) return;
    if (!dest.unreachable || (dest.deferred.size === 0 && !dest.watchWanted)) return;
    const base = this.params.backstop_destination_probe_interval * 1000;
    const delay = base * (0.9 + 0.2 * this.random());
    dest.watchTimer = setTimeout(() => {
      dest.watchTimer = null;
      void this.track(this.watchProbe(dest));
    }, delay);
    dest.watchTimer.unref();
  }

  /** Probe an unreachable destination with deferred mail; flush it the moment it answers. */
  private async watchProbe(dest: Destination): Promise<void> {
    if (!this.running || !dest.unreachable || (dest.deferred.size === 0 && !dest.watchWanted)) return;
    if (dest.inflight > 0) return this.armWatch(dest); // deliveries will tell
    dest.probing = true;
    let up: MxAddress | undefined;
    try {
      const r = await resolveNextHop(dest.hop, this.delivery);
      if (r.ok) {
        const timeout = Math.min(5000, Math.max(200, this.params.backstop_destination_probe_interval * 1000));
        for (const a of r.addresses) {
          if (await this.probeFn(a, timeout)) {
            up = a;
            break;
          }
        }
      }
    } catch (err) {
      this.log.warning(`destination ${dest.key}: probe failed: ${(err as Error).message}`);
    } finally {
      dest.probing = false;
    }
    if (!this.running) return;
    if (!up) return this.armWatch(dest);
    const ids = [...dest.deferred];
    const nexthop = `${up.name}[${up.ip}]:${up.port}`;
    this.log.info(`destination ${dest.key} is reachable again: flushing ${ids.length} message${ids.length === 1 ? '' : 's'}`);
    dest.unreachable = false;
    dest.watchWanted = false;
    dest.revive();
    for (const domain of dest.domains) this.emit('destinationUp', domain, nexthop);
    for (const id of ids) this.enqueue(id, true);
  }
}

export function createQmgr(opts: QmgrOptions): Qmgr {
  return new Qmgr(opts);
}
