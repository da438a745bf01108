// The delivery pass: jobs wait in their destination's ready list and run through the SMTP client
// as the destination's concurrency window allows; a dead destination's jobs are deferred without
// a connection attempt (unless a flush asked for them). Each delivery's per-recipient results are
// written through the queue before the message's next step, and a site failure (every recipient
// deferred by the destination, not by its mailbox) feeds the destination's dead list. Trusts the
// smtp module for per-recipient results and the queue for durability.

import type { OutboundMessage, RecipientResult } from '../smtp/index.js';
import type { Destination, Job } from './destination.js';
import type { ActiveMsg, QmgrCore } from './core.js';

/** Postfix's rule for a "site" failure: the destination, not the recipient, failed. */
function isSiteFailure(results: RecipientResult[]): boolean {
  return results.length > 0 && results.every((r) => r.status === 'deferred' && (r.relay === 'none' || r.dsn.startsWith('4.4.')));
}

export function pumpDest(q: QmgrCore, dest: Destination): void {
  if (dest.isDead(q.now())) {
    // The dead list: defer without a connection attempt, as Postfix's qmgr does.
    const all = dest.ready.splice(0);
    for (const job of all) {
      if (job.flush) dest.ready.push(job);
      else void q.track(suspended(q, dest, job));
    }
    if (dest.ready.length === 0) return;
  }
  while (q.running && dest.ready.length && dest.slots(q.deliveriesPerConnection) > 0) {
    const job = dest.ready.shift()!;
    dest.inflight++;
    q.peaks.set(dest.key, Math.max(q.peaks.get(dest.key) ?? 0, dest.inflight));
    void q.track(runJob(q, dest, job));
  }
}

async function suspended(q: QmgrCore, dest: Destination, job: Job): Promise<void> {
  const msg = q.active.get(job.id);
  if (!msg) return;
  try {
    await q.immediate(msg, job.rcpts, dest.deadDsn || '4.4.1', `delivery temporarily suspended: ${dest.deadReason}`);
  } finally {
    await q.workDone(msg);
  }
}

async function runJob(q: QmgrCore, dest: Destination, job: Job): Promise<void> {
  const msg = q.active.get(job.id);
  if (!msg) {
    dest.inflight--;
    q.pumpDest(dest);
    return;
  }
  const env = msg.head.envelope;
  let results: RecipientResult[];
  try {
    if (msg.gone || !q.queue.has(msg.id)) {
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
      body: () => q.queue.content(msg.id),
      path: q.queue.path?.(msg.entry.queue, msg.id),
      size: msg.head.messageSize,
      arrivalTime: env.arrivalTime,
      activeTime: msg.activeTime,
      client: env.client,
      nexthop: dest.hop,
    };
    try {
      const connections = q.deliveriesPerConnection > 1 ? Math.floor(dest.window) : undefined;
      results = await q.deliverFn(out, q.delivery, { key: dest.key, limit: dest.limits.concurrencyLimit, connections });
    } catch (err) {
      // Not the peer's fault (e.g. the queue file became unreadable): defer, not a site failure.
      await q.immediate(msg, job.rcpts, '4.3.0', `delivery temporarily suspended: ${(err as Error).message}`);
      return;
    }
    const now = q.now();
    if (isSiteFailure(results)) {
      const r = results[results.length - 1];
      if (dest.failure(now, r.text, q.params.minimal_backoff_time * 1000)) dest.deadDsn = r.dsn;
    } else dest.success();
    await record(q, msg, job, results);
  } finally {
    dest.inflight--;
    q.pumpDest(dest);
    await q.workDone(msg);
    if (dest.unreachable && dest.deferred.size) q.armWatch(dest);
  }
}

/** Writes the results of one delivery through the queue (bounces wait for their notice). */
async function record(q: QmgrCore, msg: ActiveMsg, job: Job, results: RecipientResult[]): Promise<void> {
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
  q.counters.delivered += sent.length;
  for (const i of sent) msg.head.states[i] = { status: 'delivered' };
  // The last piece of work of a message whose every recipient is now delivered: its removal is
  // the durable record, so the separate state write is skipped (one fsync less per message).
  const finalAllSent = msg.work === 1 && msg.bounced.size === 0 && msg.head.states.every((s) => s.status !== 'pending');
  try {
    if (sent.length && !finalAllSent) await q.queue.markDelivered(msg.id, sent, { reason: results[0].text, dsn: '2.0.0' });
    for (const { idx, r } of deferred.values()) {
      q.counters.deferred += idx.length;
      await q.queue.markDeferred(msg.id, idx, { reason: r.text, dsn: r.dsn, remoteMta: r.remoteMta, diagnosticCode: r.diagnostic ? `smtp; ${r.diagnostic}` : undefined });
    }
  } catch (err) {
    q.lost(msg, err);
  }
}

/** A queue file update failed: gone (postsuper -d while in flight) or a warning. */
export function lost(q: QmgrCore, msg: ActiveMsg, err: unknown): void {
  if (!q.queue.has(msg.id)) {
    msg.gone = true; // deleted (postsuper -d) while in flight
    return;
  }
  q.log.warning(`${msg.id}: cannot update queue file: ${(err as Error).message}`);
}
