// The end of a message's pass, once its last job is done: expired mail is returned to its
// sender, bounced recipients get one failure notice, a message with nothing pending leaves the
// queue, and the rest goes to deferred/ with its next attempt after Postfix's backoff (and a delay
// warning when delay_warning_time has passed). Notices are queued like any other message, by
// queueNotice alone. Trusts the queue for durability and the notice builder for who may receive
// a notice; a notice that cannot be queued keeps its recipients pending, so it is tried again.

import type { Envelope } from '../mail/index.js';
import { enqueue } from '../queue/index.js';
import { backoffDelay, delayWarningDue, isExpired, lifetimeFor } from './backoff.js';
import type { ActiveMsg, QmgrCore } from './core.js';
import type { NoticeRecipient } from './types.js';
import { bounces } from '../observe/index.js';

/** One piece of a message's work is done; the last one ends the pass. */
export async function workDone(q: QmgrCore, msg: ActiveMsg): Promise<void> {
  msg.work--;
  if (msg.work === 0) await finish(q, msg);
}

async function finish(q: QmgrCore, msg: ActiveMsg): Promise<void> {
  try {
    await finishInner(q, msg);
  } catch (err) {
    q.lost(msg, err);
  } finally {
    q.active.delete(msg.id);
    q.pumpActivation();
  }
}

async function finishInner(q: QmgrCore, msg: ActiveMsg): Promise<void> {
  const entry = q.queue.get(msg.id);
  if (!entry || msg.gone) return;
  const env = msg.head.envelope;
  const states = msg.head.states;
  const now = q.now();
  let pending: number[] = [];
  for (let i = 0; i < states.length; i++) if (states[i].status === 'pending' && !msg.bounced.has(i)) pending.push(i);
  // Fresh per-recipient reasons for pending recipients come from this pass; reload them.
  const lim = { maximalQueueLifetime: q.params.maximal_queue_lifetime, bounceQueueLifetime: q.params.bounce_queue_lifetime };
  if (pending.length && entry.queue !== 'hold' && isExpired(env.sender, env.arrivalTime, now, lim, entry.retry.forcedExpire)) {
    const head = await q.queue.load(msg.id);
    q.log.info(`${msg.id}: from=<${env.sender}>, status=expired, returned to sender`);
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
  const bouncedNow = msg.bounced.size > 0 || entry.status.includes('B');
  if (msg.bounced.size) {
    const rcpts = [...msg.bounced.keys()].sort((a, b) => a - b);
    const sent = await notify(q, 'failure', msg, rcpts.map((i) => msg.bounced.get(i)!));
    if (!sent) {
      // The notice could not be queued: keep the recipients pending so that it is tried again.
      pending = pending.concat(rcpts).sort((a, b) => a - b);
    } else {
      q.counters.bounced += rcpts.length;
      bounces.inc(rcpts.length);
      // When the file is removed right after, the removal is the durable record.
      if (pending.length) {
        for (const i of rcpts) {
          const b = msg.bounced.get(i)!;
          await q.queue.markBounced(msg.id, [i], { reason: b.text, dsn: b.dsn, remoteMta: b.remoteMta, diagnosticCode: b.diagnostic ? `smtp; ${b.diagnostic}` : undefined });
        }
      }
    }
    msg.bounced.clear();
  }
  if (!pending.length) {
    // Every recipient delivered, none bounced in this pass: no fsync for the removal (queue.ts).
    // Its deliveries are over, so nothing reads the file any more: it may be recycled.
    await q.queue.remove(msg.id, 'qmgr', { durable: bouncedNow, recycle: true });
    q.counters.removed++;
    q.emitDone(msg.id);
    return;
  }
  if (delayWarningDue(env.arrivalTime, now, q.params.delay_warning_time, entry.retry.delayWarningSent)) {
    const head = await q.queue.load(msg.id);
    const rcpts = pending.map((i) => ({ ...env.recipients[i], dsn: head.states[i].dsn || '4.0.0', text: head.states[i].reason || msg.lastReason, remoteMta: head.states[i].remoteMta, diagnostic: head.states[i].diagnosticCode?.replace(/^smtp;\s*/i, '') }));
    const until = env.arrivalTime + lifetimeFor(env.sender, lim) * 1000;
    if (await notify(q, 'delay', msg, rcpts, until)) await q.queue.markDelayWarningSent(msg.id);
  }
  const next = msg.requeued ? 0 : now + backoffDelay(env.arrivalTime, now, { minimalBackoffTime: q.params.minimal_backoff_time, maximalBackoffTime: q.params.maximal_backoff_time });
  msg.deferring = true;
  try {
    await q.queue.defer(msg.id, next, msg.lastReason);
  } finally {
    msg.deferring = false;
  }
  const keys = [...new Set(pending.map((i) => msg.dests.get(i)).filter((k): k is string => !!k))];
  q.noteDeferred(msg.id, keys);
  if (msg.requeued) setImmediate(() => q.enqueue(msg.id, false));
}

/** Builds and queues a notice; false when it could not be queued (retry later). */
async function notify(q: QmgrCore, kind: 'failure' | 'delay', msg: ActiveMsg, recipients: NoticeRecipient[], willRetryUntil?: number): Promise<boolean> {
  if (!q.notices) {
    q.log.warning(`${msg.id}: no bounce service: ${kind} notice not sent`);
    return true;
  }
  try {
    const notice = await q.notices.build({ kind, queueId: msg.id, envelope: msg.head.envelope, recipients, content: () => q.queue.content(msg.id), willRetryUntil });
    if (!notice) return true;
    const id = await queueNotice(q, notice.envelope, notice.content);
    const what = kind === 'failure' ? 'non-delivery' : 'delay';
    const who = msg.head.envelope.sender === '' ? 'postmaster' : 'sender';
    q.queue.logger('bounce').info(`${msg.id}: ${who} ${what} notification: ${id}`);
    return true;
  } catch (err) {
    q.log.warning(`${msg.id}: cannot queue ${kind} notice: ${(err as Error).message}`);
    return false;
  }
}

/**
 * The one place where the queue manager writes mail into the queue: a bounce or delay notice,
 * queued like any other message through the queue's transaction. Returns its queue ID.
 */
async function queueNotice(q: QmgrCore, envelope: Envelope, content: Buffer): Promise<string> {
  return enqueue(q.queue, envelope, [content]);
}
