// The queue as its manager sees it, for the metrics, `backstop status` and the dashboard: per
// queue the number of messages and the oldest one's age; per destination (recipient domain) the
// mail waiting for it, when it is retried (or "flush on return" when the destination watch will
// flush it the moment the primary answers), and what deliveries last saw of it (observe). Active,
// deferred and hold come from the queue's own index; incoming (smtpd workers' files being
// written) and corrupt from their folders, which the index does not hold. Runs in the process that
// holds the queue; reads, never changes.

import { readdirSync, statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { QUEUE_NAMES, type QueueEntry, type SchedulingQueue } from '../queue/index.js';

/** What the view reads of a queue. */
type QueueLike = Pick<SchedulingQueue, 'dir' | 'list'>;
import { destinationState, recentDestinations, type DestinationView, type MessageView, type QueueGauges, type QueueReport } from '../observe/index.js';

export interface QueueViewOptions {
  /** maximal_queue_lifetime, seconds. */
  maximalQueueLifetime: number;
  /** backstop_destination_watch: an unreachable destination is flushed when it answers. */
  watch: boolean;
  /** Messages listed per destination (the dashboard's table), newest dropped first. */
  messageLimit?: number;
  now?: () => number;
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return (at >= 0 ? address.slice(at + 1) : address).toLowerCase();
}

/** Files in a folder the index does not hold: how many and the oldest one's age (seconds). */
function folderCount(dir: string, now: number): { messages: number; oldestAge: number } {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return { messages: 0, oldestAge: 0 };
  }
  let oldest = now;
  let messages = 0;
  for (const n of names) {
    try {
      const st = statSync(join(dir, n));
      if (!st.isFile()) continue;
      messages++;
      oldest = Math.min(oldest, st.mtimeMs);
    } catch {
      // Gone since readdir (committed or removed): not counted.
    }
  }
  return { messages, oldestAge: messages ? Math.max(0, (now - oldest) / 1000) : 0 };
}

function pending(e: QueueEntry): string[] {
  return e.recipients.filter((_, i) => (e.status[i] ?? 'P') === 'P');
}

export function queueReport(queue: QueueLike, opts: QueueViewOptions): QueueReport {
  const now = (opts.now ?? Date.now)();
  const limit = opts.messageLimit ?? 200;
  const queues: QueueReport['queues'] = {};
  for (const name of QUEUE_NAMES) {
    if (name === 'incoming' || name === 'corrupt') {
      queues[name] = folderCount(join(queue.dir, name), now);
      continue;
    }
    const list = queue.list(name);
    queues[name] = { messages: list.length, oldestAge: list.length ? Math.max(0, (now - list[0].arrivalTime) / 1000) : 0 };
  }
  const dests = new Map<string, DestinationView>();
  const dest = (d: string): DestinationView => {
    let v = dests.get(d);
    if (!v) {
      const s = destinationState(d);
      v = { destination: d, up: s.up, since: s.since, queued: 0, oldestAge: 0, lastDelivery: s.lastDelivery, lastError: s.lastError, messages: [] };
      dests.set(d, v);
    }
    return v;
  };
  for (const e of queue.list()) {
    const rcpts = pending(e);
    const age = Math.max(0, (now - e.arrivalTime) / 1000);
    const byDomain = new Map<string, string[]>();
    for (const r of rcpts) {
      const d = domainOf(r);
      byDomain.set(d, [...(byDomain.get(d) ?? []), r]);
    }
    for (const [d, recipients] of byDomain) {
      const v = dest(d);
      v.queued++;
      v.oldestAge = Math.max(v.oldestAge, age);
      if (e.queue === 'deferred' && !(v.up === false && opts.watch)) {
        const next = e.retry.nextAttempt;
        if (typeof v.nextRetry !== 'number' || next < v.nextRetry) v.nextRetry = next;
      }
      if (v.messages.length < limit) {
        const m: MessageView = { id: e.id, queue: e.queue, age, sender: e.sender, recipients, size: e.messageSize, nextAttempt: e.retry.nextAttempt };
        if (e.retry.lastReason) m.lastError = e.retry.lastReason;
        v.messages.push(m);
      }
    }
  }
  // A destination the watch flushes on return has no retry time worth showing.
  for (const v of dests.values()) if (v.up === false && opts.watch && v.queued && v.nextRetry === undefined) v.nextRetry = 'flush on return';
  for (const d of recentDestinations(now)) dest(d);
  let disk: QueueReport['disk'];
  try {
    const fs = statfsSync(queue.dir);
    disk = { path: queue.dir, freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
  } catch (err) {
    disk = { path: queue.dir, error: (err as Error).message };
  }
  return {
    queues,
    destinations: [...dests.values()].sort((a, b) => b.queued - a.queued || a.destination.localeCompare(b.destination)),
    maximalQueueLifetime: opts.maximalQueueLifetime,
    disk,
  };
}

/** The queue gauges (observe's setQueueView) from the same view. */
export function queueGauges(queue: QueueLike, opts: QueueViewOptions): QueueGauges {
  const r = queueReport(queue, { ...opts, messageLimit: 0 });
  return {
    queues: Object.entries(r.queues).map(([q, v]) => ({ queue: q, messages: v.messages, oldestAgeSeconds: v.oldestAge })),
    destinations: r.destinations.map((d) => ({ destination: d.destination, up: d.up, queued: d.queued, lastDelivery: d.lastDelivery })),
  };
}
