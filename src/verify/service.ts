// The verify service (Postfix's verify(8)): answers "is this address deliverable?" from its cache
// or by probing the primary, and keeps the cache by Postfix's rules (record.ts). It does not talk
// to the network itself: probes go through the prober it is given (the SMTP client's probe(),
// which uses the same next-hop routing as real mail). Trusts the store for persistence and the
// prober to classify replies (2xx deliverable, 5xx undeliverable, anything else deferred).
//
// Differences from Postfix, each for a reason:
// - smtpd is answered the moment the probe completes, not at the next poll (Postfix re-polls
//   after address_verify_poll_delay, so a first RCPT takes ~3 s even when the probe took 40 ms).
//   The budget is Postfix's: (address_verify_poll_count - 1) × address_verify_poll_delay, so a
//   poll count of 1 still means "always defer the first request" (crude greylisting).
// - Concurrent checks of one address share one probe; probes per destination are bounded
//   (backstop_verify_probe_concurrency) and queue beyond that.
// - backstop_verify_reprobe_on_return: a DEFER entry says the primary was unreachable, not that
//   the address is bad; when the destination answers again (qmgr's destinationUp), such entries
//   are probed at once instead of after address_verify_negative_refresh_time.

import { maillog, type Logger } from '../log/index.js';
import { domainOf } from '../mail/index.js';
import { countVerifyLookup, verifyProbes } from '../observe/index.js';
import type { VerifyResult } from './types.js';
import type { VerifyStore } from './store.js';
import { MemoryStore } from './store.js';
import { DEFAULT_VERIFY_PARAMS, type VerifyParams } from './params.js';
import { DestinationLimiter } from './limiter.js';
import type { EntryInfo, ProbeResult, Prober, VerifierOptions, VerifyService, WarmResult } from './api.js';
import { makeProbeSender, isProbeSender as isProbeSenderWith, checkProbeSender } from './sender.js';
import {
  STAT_OK, STAT_DEFER, STAT_BOUNCE, STAT_TODO, PROBE_TTL, CLEANUP_KEY, IN_PROGRESS_TEXT,
  cacheKey, formatRecord, parseRecord, badRecordWarning, isExpired, needsRefresh, keepAtCleanup,
  expiresAt, refreshAt, type VerifyRecord, type ExpiryTimes, type RecordStatus,
} from './record.js';

const PROBLEM = 'address verification problem';

function toResult(r: VerifyRecord): VerifyResult {
  switch (r.status) {
    case STAT_OK:
      return { status: 'deliverable', text: r.text };
    case STAT_BOUNCE:
      return { status: 'undeliverable', text: r.text };
    case STAT_DEFER:
      return { status: 'tempfail', text: r.text };
    default:
      return { status: 'pending', text: IN_PROGRESS_TEXT };
  }
}

function statusOf(p: ProbeResult): RecordStatus {
  return p.status === 'deliverable' ? STAT_OK : p.status === 'undeliverable' ? STAT_BOUNCE : STAT_DEFER;
}

export function createVerifier(opts: VerifierOptions): VerifyService {
  return new VerifyServiceImpl(opts);
}

class VerifyServiceImpl implements VerifyService {
  readonly params: Readonly<VerifyParams>;
  private readonly store: VerifyStore;
  private readonly prober: Prober;
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly destinationOf: (address: string) => string;
  private readonly times: ExpiryTimes;
  private readonly limiter: DestinationLimiter;
  private readonly inflight = new Map<string, Promise<ProbeResult>>();
  private pendingProbes = 0;
  private probeCount = 0;
  private nextCleanup: number | undefined;
  private cleanupRunning: Promise<{ retained: number; dropped: number }> | undefined;
  private cleanupInit: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly upListener = (domain: string): void => {
    void this.destinationUp(domain).catch((err: Error) => this.log.warning(`re-probe after ${domain} returned: ${err.message}`));
  };
  private closed = false;

  constructor(private readonly opts: VerifierOptions) {
    this.params = { ...DEFAULT_VERIFY_PARAMS, ...opts.params };
    checkProbeSender(this.params);
    const p = this.params;
    for (const n of ['address_verify_poll_count', 'address_verify_positive_expire_time', 'address_verify_positive_refresh_time', 'address_verify_negative_expire_time', 'address_verify_negative_refresh_time', 'address_verify_pending_request_limit'] as const) {
      if (!(p[n] >= 1)) throw new Error(`${n}: must be 1 or more, got ${p[n]}`);
    }
    if (!(p.address_verify_poll_delay > 0)) throw new Error(`address_verify_poll_delay: must be positive, got ${p.address_verify_poll_delay}`);
    this.store = opts.store ?? new MemoryStore();
    this.prober = opts.prober;
    this.clock = opts.now ?? Date.now;
    this.log = opts.log ?? maillog.logger('verify');
    this.destinationOf = opts.destinationOf ?? domainOf;
    this.times = {
      positiveExpire: p.address_verify_positive_expire_time,
      negativeExpire: p.address_verify_negative_expire_time,
      positiveRefresh: p.address_verify_positive_refresh_time,
      negativeRefresh: p.address_verify_negative_refresh_time,
    };
    this.limiter = new DestinationLimiter(p.backstop_verify_probe_concurrency);
    if (p.backstop_verify_reprobe_on_return) opts.destinationEvents?.on('destinationUp', this.upListener);
    if (p.address_verify_cache_cleanup_interval > 0 && opts.cleanupTimer !== false) {
      const every = Math.min(p.address_verify_cache_cleanup_interval * 1000, 60_000);
      this.timer = setInterval(() => this.maybeCleanup(this.nowSec()), every);
      this.timer.unref();
    }
  }

  get stats() {
    return { probes: this.probeCount, peakPerDestination: this.limiter.peak, pending: this.pendingProbes };
  }

  private nowSec(): number {
    return Math.floor(this.clock() / 1000);
  }

  probeSender(): string {
    return makeProbeSender(this.params, this.nowSec());
  }

  isProbeSender(address: string): boolean {
    return isProbeSenderWith(this.params, address, this.nowSec());
  }

  check(address: string, _kind: 'recipient' | 'sender' = 'recipient'): Promise<VerifyResult> {
    // The null sender cannot be probed; Postfix's reject_unverified_sender skips it.
    if (address === '' || address === '<>') return Promise.resolve({ status: 'deliverable', text: '' });
    const key = cacheKey(address);
    const now = this.nowSec();
    if (this.nextCleanup === undefined || now >= this.nextCleanup) this.maybeCleanup(now);
    // Fast path (the cache hit): a synchronous store holding a usable answer with nothing to do.
    let raw: string | undefined | Promise<string | undefined>;
    try {
      raw = this.store.get(key);
    } catch {
      raw = undefined;
    }
    if (typeof raw === 'string') {
      const rec = parseRecord(raw);
      if (rec !== undefined && rec.status !== STAT_TODO && (now - rec.probed <= PROBE_TTL || (!isExpired(rec, this.times, now) && !needsRefresh(rec, this.times, now)))) {
        countVerifyLookup('hit');
        return Promise.resolve(toResult(rec));
      }
    }
    // An asynchronous store's read is reused below, so its failure is handled there.
    return this.slowCheck(address, key, now, raw);
  }

  private async slowCheck(address: string, key: string, now: number, first?: string | undefined | Promise<string | undefined>): Promise<VerifyResult> {
    let rec: VerifyRecord;
    try {
      rec = await this.query(address, key, now, false, first instanceof Promise ? first : undefined);
    } catch (err) {
      this.log.warning(`${PROBLEM}: ${(err as Error).message}`);
      return { status: 'tempfail', text: PROBLEM, problem: true };
    }
    countVerifyLookup(rec.status !== STAT_TODO ? 'hit' : 'miss');
    if (rec.status !== STAT_TODO) return toResult(rec);
    return this.waitFor(key);
  }

  /**
   * Postfix's verify_query_service(): the answer for the address now, and a probe when the entry
   * needs one (absent, expired, or due for a refresh) and none was sent in the last PROBE_TTL.
   */
  private async query(address: string, key: string, now: number, force: boolean, pendingRead?: Promise<string | undefined>): Promise<VerifyRecord> {
    const p = this.params;
    const raw = await (pendingRead ?? this.store.get(key));
    let rec = raw === undefined ? undefined : parseRecord(raw);
    if (raw !== undefined && rec === undefined) this.log.warning(badRecordWarning(raw));
    if (rec === undefined || (now - rec.probed > PROBE_TTL && isExpired(rec, this.times, now))) {
      if (raw !== undefined && !p.address_verify_negative_cache) await this.store.del(key);
      rec = { status: STAT_TODO, probed: 0, updated: 0, text: IN_PROGRESS_TEXT };
    }
    if (!this.inflight.has(key) && now - rec.probed > PROBE_TTL && (force || needsRefresh(rec, this.times, now))) {
      if (this.startProbe(address, key)) {
        // With negative caching off, a new address gets no record until it proves deliverable.
        if (rec.updated !== 0 || p.address_verify_negative_cache) {
          const marked = { ...rec, probed: now };
          await this.store.put(key, formatRecord(marked), this.ttlFor(marked, now));
        }
      }
    }
    return rec;
  }

  /** Redis TTL: as long as the entry can be served, and at least as long as its probe may run. */
  private ttlFor(r: VerifyRecord, now: number): number {
    return Math.max(expiresAt(r, this.times) - now, r.probed + PROBE_TTL - now, 1) + 60;
  }

  /** Start a probe unless too many are pending (address_verify_pending_request_limit). */
  private startProbe(address: string, key: string): boolean {
    if (this.pendingProbes >= this.params.address_verify_pending_request_limit) {
      this.log.warning(`address verification request for ${address} not sent: ${this.pendingProbes} requests pending (address_verify_pending_request_limit)`);
      return false;
    }
    this.pendingProbes++;
    const run = this.limiter
      .run(this.destinationOf(address), () => this.sendProbe(address))
      .then(async (result) => {
        verifyProbes.inc({ status: result.status });
        try {
          await this.update(key, result);
        } catch (err) {
          this.log.warning(`${PROBLEM}: cannot store the result for ${address}: ${(err as Error).message}`);
        }
        return result;
      })
      .finally(() => {
        this.pendingProbes--;
        if (this.inflight.get(key) === run) this.inflight.delete(key);
      });
    this.inflight.set(key, run);
    return true;
  }

  private async sendProbe(address: string): Promise<ProbeResult> {
    this.probeCount++;
    try {
      return await this.prober(address, this.probeSender());
    } catch (err) {
      // A probe that could not even run says nothing about the address: deferred.
      return { status: 'deferred', dsn: '4.3.0', text: `${PROBLEM}: ${(err as Error).message}`, relay: 'none' };
    }
  }

  /**
   * Postfix's verify_update_service(). Robustness: a failed probe never clobbers an OK entry
   * before it expires — the primary being down is exactly when the cached answer is needed; the
   * address is simply probed again on a later query. With address_verify_negative_cache = no,
   * failures are not stored at all.
   */
  private async update(key: string, result: ProbeResult): Promise<void> {
    const status = statusOf(result);
    if (status !== STAT_OK && !this.params.address_verify_negative_cache) return;
    if (status !== STAT_OK) {
      const raw = await this.store.get(key);
      if (raw !== undefined && parseRecord(raw)?.status === STAT_OK) return;
    }
    const now = this.nowSec();
    const rec: VerifyRecord = { status, probed: 0, updated: now, text: result.text };
    await this.store.put(key, formatRecord(rec), this.ttlFor(rec, now));
  }

  /** Wait for the probe within the poll budget; answer the moment it completes. */
  private async waitFor(key: string): Promise<VerifyResult> {
    const p = this.params;
    const budgetMs = Math.max(0, (p.address_verify_poll_count - 1) * p.address_verify_poll_delay * 1000);
    const pending: VerifyResult = { status: 'pending', text: IN_PROGRESS_TEXT };
    if (budgetMs === 0) return pending;
    const mine = this.inflight.get(key);
    if (mine) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, budgetMs, undefined)));
      const r = await Promise.race([mine, timeout]);
      clearTimeout(timer);
      if (r === undefined) return pending;
      return toResult({ status: statusOf(r), probed: 0, updated: 1, text: r.text });
    }
    // Another node (shared store) or process sent the probe: re-read the store until it answers.
    // This budget is measured in wall time on purpose, not with the injected clock: the wait runs
    // on real timers, and a test clock that stands still would make it never end.
    const deadline = Date.now() + budgetMs;
    const step = Math.min(p.address_verify_poll_delay * 1000, 100);
    while (Date.now() + step <= deadline && !this.closed) {
      await new Promise((r) => setTimeout(r, step));
      try {
        const raw = await this.store.get(key);
        const rec = raw === undefined ? undefined : parseRecord(raw);
        if (rec && rec.status !== STAT_TODO && !isExpired(rec, this.times, this.nowSec())) return toResult(rec);
      } catch (err) {
        this.log.warning(`${PROBLEM}: ${(err as Error).message}`);
        return { status: 'tempfail', text: PROBLEM, problem: true };
      }
      const again = this.inflight.get(key);
      if (again) return this.waitFor(key);
    }
    return pending;
  }

  async warm(address: string, opts: { force?: boolean } = {}): Promise<WarmResult> {
    const key = cacheKey(address);
    const now = this.nowSec();
    let rec: VerifyRecord;
    try {
      rec = await this.query(address, key, now, opts.force ?? false);
    } catch (err) {
      return { address, status: 'error', text: (err as Error).message };
    }
    const mine = this.inflight.get(key);
    if (!mine) {
      if (rec.status === STAT_TODO) return { address, status: 'skipped', text: 'a probe is already outstanding' };
      return { address, status: 'cached', text: rec.text };
    }
    const r = await mine;
    return { address, status: r.status, text: r.text };
  }

  async destinationUp(domain: string): Promise<number> {
    if (this.closed) return 0;
    const d = domain.toLowerCase();
    const due: string[] = [];
    for await (const [k, v] of this.store.entries()) {
      if (k === CLEANUP_KEY || this.inflight.has(k) || domainOf(k) !== d) continue;
      if (parseRecord(v)?.status === STAT_DEFER) due.push(k);
    }
    if (due.length === 0) return 0;
    this.log.info(`destination ${d} is reachable again: re-probing ${due.length} deferred address${due.length === 1 ? '' : 'es'}`);
    const now = this.nowSec();
    for (const k of due) await this.query(k, k, now, true);
    return due.length;
  }

  private maybeCleanup(now: number): void {
    const interval = this.params.address_verify_cache_cleanup_interval;
    if (interval <= 0 || this.closed || this.cleanupRunning || this.cleanupInit) return;
    if (this.nextCleanup === undefined) {
      // First use: continue the schedule that _LAST_CACHE_CLEANUP_COMPLETED_ records.
      this.cleanupInit = (async () => {
        try {
          const last = Number(await this.store.get(CLEANUP_KEY));
          this.nextCleanup = Number.isFinite(last) && last > 0 ? last + interval : now;
        } catch {
          this.nextCleanup = now + 60;
        }
      })().finally(() => {
        this.cleanupInit = undefined;
        if (this.nextCleanup !== undefined && this.nowSec() >= this.nextCleanup) this.maybeCleanup(this.nowSec());
      });
      return;
    }
    if (now < this.nextCleanup) return;
    void this.runCleanup().catch((err: Error) => {
      this.log.warning(`cache ${this.store.name}: cleanup failed: ${err.message}`);
      this.nextCleanup = this.nowSec() + 60;
    });
  }

  runCleanup(): Promise<{ retained: number; dropped: number }> {
    if (this.cleanupRunning) return this.cleanupRunning;
    this.cleanupRunning = (async () => {
      const now = this.nowSec();
      let retained = 0;
      const drop: string[] = [];
      for await (const [k, v] of this.store.entries()) {
        if (k === CLEANUP_KEY) continue;
        if (keepAtCleanup(v, this.times, now)) retained++;
        else drop.push(k);
      }
      for (const k of drop) await this.store.del(k);
      await this.store.put(CLEANUP_KEY, String(now));
      this.nextCleanup = now + this.params.address_verify_cache_cleanup_interval;
      this.log.info(`cache ${this.store.name} full cleanup: retained=${retained} dropped=${drop.length} entries`);
      return { retained, dropped: drop.length };
    })().finally(() => {
      this.cleanupRunning = undefined;
    });
    return this.cleanupRunning;
  }

  async inspect(address: string): Promise<EntryInfo> {
    const key = cacheKey(address);
    const now = this.nowSec();
    const raw = await this.store.get(key);
    const record = raw === undefined ? undefined : parseRecord(raw);
    if (!record) return { key, raw, now, probeOutstanding: false, expired: false };
    return {
      key, raw, record, now,
      expiresAt: expiresAt(record, this.times),
      refreshAt: record.updated ? refreshAt(record, this.times) : undefined,
      probeOutstanding: record.probed !== 0 && now - record.probed <= PROBE_TTL,
      expired: record.updated !== 0 && isExpired(record, this.times, now),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.opts.destinationEvents?.off?.('destinationUp', this.upListener);
    await Promise.allSettled([...this.inflight.values()]);
    if (this.cleanupRunning) await this.cleanupRunning.catch(() => {});
  }
}
