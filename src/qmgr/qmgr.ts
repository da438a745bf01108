// The queue manager (Postfix's qmgr): takes committed messages from the queue, groups their
// recipients per next-hop destination, runs deliveries through the SMTP client within each
// destination's concurrency window (slow start, dead list), writes every per-recipient result
// through the queue before the next attempt, retries deferred mail with Postfix's backoff, returns
// expired mail, sends bounce and delay notices through the queue like any other message, and —
// beyond Postfix — watches unreachable destinations and flushes them the moment they answer.
// This file keeps the life cycle (start, stop, queue events, scans) and wires the stages:
// activation.ts, pass.ts (deliveries), endpass.ts (end of a pass, notices), deferred.ts (deferred
// mail, destination watch) and flush.ts. Trusts the queue for durability, the smtp module for
// routing and per-recipient results, and the notice builder for who may receive a notice. Owns
// no files and no sockets except the watch probe.

import { EventEmitter } from 'node:events';
import { maillog, type Logger } from '../log/index.js';
import type { QueueEntry, SchedulingQueue } from '../queue/index.js';
import { deliver as smtpDeliver, type DeliveryOptions } from '../smtp/index.js';
import { destinationFor, enqueue, immediate, pumpActivation } from './activation.js';
import type { DeliverFn, ProbeFn, QmgrCore } from './core.js';
import { armWatch, forgetDeferred, indexDeferred, noteDeferred, watchAddress } from './deferred.js';
import { workDone } from './endpass.js';
import { flushAll, flushDomain } from './flush.js';
import { QMGR_DEFAULTS, type QmgrParams } from './params.js';
import { lost, pumpDest } from './pass.js';
import type { NoticeBuilder, QmgrStats } from './types.js';
import { probeGreeting } from './watch.js';

export interface QmgrOptions {
  queue: SchedulingQueue;
  /** Routing, session options and connection cache of the SMTP client. */
  delivery: DeliveryOptions;
  /** The delivery function (default: the smtp module's deliver). */
  deliver?: DeliverFn;
  /** Builds bounce and delay notices; without it no notice is sent (logged as a warning). */
  notices?: NoticeBuilder;
  params?: Partial<QmgrParams>;
  /** Clock (ms since the epoch) of every time the queue manager takes: activation, retry, lifetime, dead list; default Date.now. */
  now?: () => number;
  /** Random source for the watch jitter; default Math.random. */
  random?: () => number;
  /** Greeting probe of the destination watch; default: TCP connect, read 220, QUIT. */
  probe?: ProbeFn;
  log?: Logger;
  /**
   * Deliveries per connection a destination may have in flight: its concurrency window limits
   * connections, and this many deliveries share each (the next message is pipelined behind the
   * previous end of data, see smtp/pool.ts). Default 3 with the smtp module's deliver and a
   * connection cache — one waiting for its end-of-data reply, one writing, one waiting to be
   * handed the connection, so that its MAIL rides with the previous end of data instead of a
   * pipelined RSET and a later write (with 2, 15% of a drain's messages were handed over so, with
   * 3, 70-85%: bench/qmgr-drain.ts) — else 1 (the window limits deliveries).
   */
  deliveriesPerConnection?: number;
}

export interface QmgrEvents {
  /** A watched destination answered its probe: `domain` has mail queued for `nexthop` (host[ip]:port). */
  destinationUp: [domain: string, nexthop: string];
  /** A message left the queue (every recipient done, or returned). */
  done: [id: string];
}

export class Qmgr extends EventEmitter<QmgrEvents> {
  readonly params: QmgrParams;
  private readonly q: QmgrCore;
  private readonly tasks = new Set<Promise<unknown>>();
  private scanTimer: NodeJS.Timeout | null = null;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(opts: QmgrOptions) {
    super();
    this.params = { ...QMGR_DEFAULTS, ...opts.params };
    const bind = opts.delivery.session.bindAddress;
    const tasks = this.tasks;
    const q: QmgrCore = {
      params: this.params,
      queue: opts.queue,
      delivery: opts.delivery,
      deliverFn: opts.deliver ?? smtpDeliver,
      deliveriesPerConnection: opts.deliveriesPerConnection ?? (!opts.deliver && opts.delivery.cache ? 3 : 1),
      notices: opts.notices,
      now: opts.now ?? Date.now,
      random: opts.random ?? Math.random,
      probeFn: opts.probe ?? ((a, t) => probeGreeting(a, t, bind)),
      log: opts.log ?? maillog.logger('qmgr'),
      dests: new Map(),
      active: new Map(),
      activation: [],
      queued: new Map(),
      deferredDests: new Map(),
      counters: { delivered: 0, bounced: 0, deferred: 0, removed: 0 },
      peaks: new Map(),
      activating: 0,
      running: false,
      track<T>(p: Promise<T>): Promise<T> {
        tasks.add(p);
        void p.finally(() => tasks.delete(p)).catch(() => undefined);
        return p;
      },
      enqueue: (id, flush) => enqueue(q, id, flush),
      pumpActivation: () => pumpActivation(q),
      destination: (hop) => destinationFor(q, hop),
      pumpDest: (dest) => pumpDest(q, dest),
      workDone: (msg) => workDone(q, msg),
      lost: (msg, err) => lost(q, msg, err),
      immediate: (msg, idx, dsn, text) => immediate(q, msg, idx, dsn, text),
      noteDeferred: (id, keys) => noteDeferred(q, id, keys),
      forgetDeferred: (id) => forgetDeferred(q, id),
      armWatch: (dest) => armWatch(q, dest),
      emitDone: (id) => this.emit('done', id),
      emitDestinationUp: (domain, nexthop) => this.emit('destinationUp', domain, nexthop),
    };
    this.q = q;
  }

  // ------------------------------------------------------------------ life cycle

  /** Start: schedule what recovery left in active/, index deferred mail, start the queue scans. */
  async start(): Promise<void> {
    const q = this.q;
    if (q.running) return;
    q.running = true;
    // Mail accepted into hold/ (access(5) HOLD) waits for postsuper -H; deferred/ for its time.
    const onAccepted = (id: string, e?: QueueEntry) => { if (!e || e.queue === 'active') this.onAccepted(id); };
    const onMoved = (id: string, _from: string, to: string) => this.onMoved(id, to);
    const onRemoved = (id: string) => q.forgetDeferred(id);
    // postsuper -r on mail already in deferred/ changes only its retry time: due now.
    const onUpdated = (id: string, e: QueueEntry) => {
      if (e.queue === 'deferred' && e.retry.nextAttempt === 0 && !q.active.has(id)) q.enqueue(id, false);
    };
    q.queue.on('updated', onUpdated);
    q.queue.on('accepted', onAccepted);
    q.queue.on('moved', onMoved);
    q.queue.on('removed', onRemoved);
    this.unsubscribe.push(
      () => q.queue.off('accepted', onAccepted),
      () => q.queue.off('moved', onMoved),
      () => q.queue.off('removed', onRemoved),
      () => q.queue.off('updated', onUpdated),
    );
    for (const e of q.queue.list('active')) q.enqueue(e.id, false);
    const now = q.now();
    for (const e of q.queue.list('deferred')) {
      if (e.retry.nextAttempt <= now) q.enqueue(e.id, false);
      else await indexDeferred(q, e);
    }
    this.scheduleScan();
  }

  /** Stop scheduling; waits (bounded) for deliveries in flight to write their results. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const q = this.q;
    q.running = false;
    if (this.scanTimer) clearTimeout(this.scanTimer);
    this.scanTimer = null;
    for (const u of this.unsubscribe.splice(0)) u();
    for (const d of q.dests.values()) {
      if (d.watchTimer) clearTimeout(d.watchTimer);
      d.watchTimer = null;
    }
    q.activation.length = 0;
    q.queued.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.tasks]),
      new Promise((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    await q.delivery.cache?.closeAll();
  }

  /** A message was committed to the queue: deliver it now unless its destination is dead. */
  onAccepted(id: string): void {
    this.q.enqueue(id, false);
  }

  private onMoved(id: string, to: string): void {
    if (to !== 'deferred') return;
    const q = this.q;
    const busy = q.active.get(id);
    if (busy) {
      if (!busy.deferring) busy.requeued = true;
      return;
    }
    const e = q.queue.get(id);
    // postsuper -r (due now) and -H (released): schedule or index again.
    if (e && e.retry.nextAttempt <= q.now()) q.enqueue(id, false);
    else if (e) void q.track(indexDeferred(q, e));
  }

  private scheduleScan(): void {
    if (!this.q.running) return;
    this.scanTimer = setTimeout(() => {
      this.scan();
      this.scheduleScan();
    }, this.params.queue_run_delay * 1000);
    this.scanTimer.unref();
  }

  /** The deferred queue scan: every message whose next attempt is due. */
  scan(): void {
    const q = this.q;
    const now = q.now();
    for (const e of q.queue.list('deferred')) if (e.retry.nextAttempt <= now) q.enqueue(e.id, false);
    // Mail left in active/ that no pass is working on: the end of its last pass could not be
    // written (disk full: markDeferred/defer failed), so nothing else would ever pick it up again.
    for (const e of q.queue.list('active')) if (!q.active.has(e.id)) q.enqueue(e.id, false);
  }

  // ------------------------------------------------------------------ flush (ETRN, postqueue)

  /** postqueue -f: every deferred message now, dead list ignored. */
  async flushAll(): Promise<void> {
    flushAll(this.q);
  }

  /**
   * ETRN / postqueue -s: deferred mail with a recipient in `domain` now. Eligible: a domain in
   * fast_flush_domains, or any domain that has mail in the queue (which covers permit_mx_backup
   * domains; Postfix's ETRN misses those).
   */
  async flushDomain(domain: string): Promise<boolean> {
    return flushDomain(this.q, domain);
  }

  /**
   * Watch the next hop of `address` although no mail waits for it: verify's probe for the address
   * could not connect, and its DEFER entry should be re-probed the moment the destination answers
   * (destinationUp) instead of after address_verify_negative_refresh_time.
   */
  async watchAddress(address: string): Promise<void> {
    return watchAddress(this.q, address);
  }

  stats(): QmgrStats {
    const q = this.q;
    let ready = 0;
    let inflight = 0;
    const destinations: QmgrStats['destinations'] = [];
    for (const d of q.dests.values()) {
      ready += d.ready.length;
      inflight += d.inflight;
      destinations.push({ key: d.key, window: d.window, inflight: d.inflight, ready: d.ready.length, dead: d.isDead(q.now()), deferred: d.deferred.size, peak: q.peaks.get(d.key) ?? 0 });
    }
    return { active: q.active.size, ready, inflight, ...q.counters, destinations };
  }
}

export function createQmgr(opts: QmgrOptions): Qmgr {
  return new Qmgr(opts);
}
