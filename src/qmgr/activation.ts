// Activation: a message that is due (new, retried, flushed) moves to active/, its pending
// recipients are routed (smtp module's next-hop choice) and grouped per destination into jobs of
// at most default_destination_recipient_limit recipients. At most ACTIVATION_PARALLEL messages are
// activated at once and no more than qmgr_message_active_limit are active. A recipient that
// cannot be routed gets its result here, without a delivery. Trusts the queue for the message and
// the smtp module for routing; delivery itself is the delivery pass's job.

import { domainOf } from '../mail/index.js';
import { chooseNextHop, logDelivery, type NextHop } from '../smtp/index.js';
import { Destination } from './destination.js';
import type { ActiveMsg, QmgrCore } from './core.js';

const ACTIVATION_PARALLEL = 32;

/** Schedules a message for activation; a flush request sticks to a message already waiting. */
export function enqueue(q: QmgrCore, id: string, flush: boolean): void {
  if (!q.running) return;
  if (q.active.has(id)) return;
  if (q.queued.has(id)) {
    if (flush) q.queued.set(id, true);
    return;
  }
  q.queued.set(id, flush);
  q.activation.push({ id, flush });
  q.pumpActivation();
}

export function pumpActivation(q: QmgrCore): void {
  while (
    q.running &&
    q.activating < ACTIVATION_PARALLEL &&
    q.activation.length &&
    q.active.size + q.activating < q.params.qmgr_message_active_limit
  ) {
    const item = q.activation.shift()!;
    const flush = q.queued.get(item.id) ?? item.flush;
    q.queued.delete(item.id);
    q.activating++;
    void q.track(
      activate(q, item.id, flush)
        .catch((err) => q.log.warning(`${item.id}: activation failed: ${(err as Error).message}`))
        .finally(() => {
          q.activating--;
          q.pumpActivation();
        }),
    );
  }
}

async function activate(q: QmgrCore, id: string, flush: boolean): Promise<void> {
  const entry = q.queue.get(id);
  if (!entry || entry.queue === 'hold' || entry.queue === 'corrupt' || entry.queue === 'incoming' || q.active.has(id)) return;
  q.forgetDeferred(id);
  const msg: ActiveMsg = { id, entry, head: undefined as never, activeTime: q.now(), work: 1, bounced: new Map(), dests: new Map(), lastReason: '', gone: false, requeued: false, deferring: false };
  q.active.set(id, msg);
  try {
    if (entry.queue !== 'active') await q.queue.moveTo(id, 'active');
    // A shared queue's message another node holds now (docs/cluster.md) left the index: not ours.
    if (!q.queue.has(id)) {
      q.active.delete(id);
      return;
    }
    // Statuses from the index: the journal's reasons are read only for a notice (endpass.ts).
    msg.head = await q.queue.load(id, { statesFromIndex: true });
  } catch (err) {
    q.active.delete(id);
    throw err;
  }
  const env = msg.head.envelope;
  const groups = new Map<string, { dest: Destination; idx: number[] }>();
  for (let i = 0; i < env.recipients.length; i++) {
    if (msg.head.states[i].status !== 'pending') continue;
    const address = env.recipients[i].address;
    const hop = await chooseNextHop(address, q.delivery).catch((err: Error) => ({ dsn: '4.3.5', text: `mail system configuration error: ${err.message}` }));
    if ('dsn' in hop) {
      await q.immediate(msg, [i], hop.dsn, hop.text);
      continue;
    }
    const dest = q.destination(hop);
    dest.domains.add(domainOf(address));
    msg.dests.set(i, dest.key);
    const g = groups.get(dest.key) ?? { dest, idx: [] };
    g.idx.push(i);
    groups.set(dest.key, g);
  }
  const limit = Math.max(1, q.params.default_destination_recipient_limit);
  for (const { dest, idx } of groups.values()) {
    if (flush && dest.isDead(q.now())) dest.revive();
    for (let k = 0; k < idx.length; k += limit) {
      dest.ready.push({ id, rcpts: idx.slice(k, k + limit), flush });
      msg.work++;
    }
  }
  for (const { dest } of groups.values()) q.pumpDest(dest);
  await q.workDone(msg);
}

/** The destination of a next hop, with the concurrency parameters in force; created on first use. */
export function destinationFor(q: QmgrCore, hop: NextHop): Destination {
  let d = q.dests.get(hop.key);
  if (!d) {
    d = new Destination(hop, {
      concurrencyLimit: q.params.default_destination_concurrency_limit,
      initialConcurrency: q.params.initial_destination_concurrency,
      failedCohortLimit: q.params.default_destination_concurrency_failed_cohort_limit,
    });
    q.dests.set(hop.key, d);
  }
  return d;
}

/** A result decided without a delivery (routing failure, dead destination): log it and record it. */
export async function immediate(q: QmgrCore, msg: ActiveMsg, idx: number[], dsn: string, text: string): Promise<void> {
  const env = msg.head.envelope;
  const now = q.now();
  const status = dsn.startsWith('5') ? 'bounced' : 'deferred';
  for (const i of idx) {
    const r = env.recipients[i];
    const s = (ms: number) => Math.max(0, ms) / 1000;
    logDelivery(q.log, {
      queueId: msg.id,
      recipient: r.address,
      origRecipient: r.orcpt?.replace(/^rfc822;/i, ''),
      relay: 'none',
      delays: { beforeActive: s(msg.activeTime - env.arrivalTime), inActive: s(now - msg.activeTime), setup: 0, transmission: 0, total: s(now - env.arrivalTime) },
      dsn,
      status,
      text,
    }, q.delivery.delayResolution ?? 2);
  }
  if (status === 'bounced') {
    for (const i of idx) msg.bounced.set(i, { ...env.recipients[i], dsn, text });
  } else {
    msg.lastReason = text;
    q.counters.deferred += idx.length;
    await q.queue.markDeferred(msg.id, idx, { reason: text, dsn }).catch((err) => q.lost(msg, err));
  }
}
