// Per-destination delivery state, as Postfix's qmgr keeps it in its queue structure: the
// concurrency window with slow start (start at initial_destination_concurrency, +1/window per
// success up to the limit — so the window grows by one per window's worth of successes), negative
// feedback on site failures (-1/window, never below 1) with failed "cohorts" counted, and the
// dead list: after default_destination_concurrency_failed_cohort_limit (1) cohorts of failures the
// destination is suspended for minimal_backoff_time, and mail for it is deferred without a
// connection attempt. Trusts its caller to say what a site failure is; knows no sockets.

import type { NextHop } from '../smtp/index.js';

export interface Job {
  id: string;
  /** Recipient indexes in the queue file. */
  rcpts: number[];
  /** Delivery requested by a flush: ignore the dead list (as Postfix's flush does). */
  flush: boolean;
}

export interface DestinationLimits {
  concurrencyLimit: number;
  initialConcurrency: number;
  failedCohortLimit: number;
}

export class Destination {
  readonly key: string;
  hop: NextHop;
  /** Recipient domains seen routed here (for destinationUp and flushDomain). */
  readonly domains = new Set<string>();
  window: number;
  inflight = 0;
  failedCohorts = 0;
  readonly ready: Job[] = [];
  /** Dead until this time (ms), with the reason of the failure that killed it. */
  deadUntil = 0;
  deadReason = '';
  deadDsn = '';
  /** The last failure was at the site level (unreachable): the watch probes it. */
  unreachable = false;
  /** When it became unreachable (ms; 0 while reachable): the watch slows down after hours. */
  downSince = 0;
  lastReason = '';
  /** Deferred messages with pending recipients here. */
  readonly deferred = new Set<string>();
  watchTimer: NodeJS.Timeout | null = null;
  probing = false;
  /** Watched without queued mail: an address probe for the verify cache failed to connect here. */
  watchWanted = false;

  constructor(hop: NextHop, readonly limits: DestinationLimits) {
    this.key = hop.key;
    this.hop = hop;
    this.window = Math.min(limits.initialConcurrency, limits.concurrencyLimit);
  }

  isDead(now: number): boolean {
    return this.deadUntil > now;
  }

  /** How many more deliveries may start now, `perConnection` of them for each connection the window allows. */
  slots(perConnection = 1): number {
    return Math.max(0, Math.floor(this.window) * perConnection - this.inflight);
  }

  /** A delivery completed without a site failure: grow the window (slow start). */
  success(): void {
    this.failedCohorts = 0;
    this.unreachable = false;
    this.downSince = 0;
    this.deadUntil = 0;
    this.window = Math.min(this.limits.concurrencyLimit, this.window + 1 / Math.floor(this.window));
  }

  /**
   * A site failure (connection refused, timeout, lost session, no route). Returns true when the
   * destination just became dead (for `suspendMs`).
   */
  failure(now: number, reason: string, suspendMs: number): boolean {
    this.markDown(now);
    this.lastReason = reason;
    const w = Math.floor(this.window);
    this.failedCohorts += 1 / w;
    if (this.window > 1) this.window = Math.max(1, this.window - 1 / w);
    if (this.failedCohorts >= this.limits.failedCohortLimit && !this.isDead(now)) {
      this.deadUntil = now + suspendMs;
      this.deadReason = reason;
      return true;
    }
    return false;
  }

  /**
   * The destination watch found it still down: a dead destination stays dead (for `suspendMs`
   * more), so new mail for it is deferred without a doomed connection attempt until the watch
   * sees it answer (Postfix: "delivery temporarily suspended").
   */
  stillDown(now: number, suspendMs: number): void {
    if (this.failedCohorts >= this.limits.failedCohortLimit) this.deadUntil = Math.max(this.deadUntil, now + suspendMs);
  }

  /** Unreachable from `now` on (unless it already was: the outage keeps its start). */
  markDown(now: number): void {
    if (!this.unreachable || !this.downSince) this.downSince = now;
    this.unreachable = true;
  }

  /** Back to life (dead time over, the watch saw a greeting, or a flush): slow start again. */
  revive(): void {
    this.deadUntil = 0;
    this.failedCohorts = 0;
    this.window = Math.min(this.limits.initialConcurrency, this.limits.concurrencyLimit);
  }
}
