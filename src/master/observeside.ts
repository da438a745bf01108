// What a process of the mail system tells the master about itself when asked (the `observe`
// message, or a direct call with backstop_single_process = yes): its metrics, its last hour, and —
// in the process that holds the queue — the queue as the queue manager sees it, which also feeds
// the queue gauges. Reads only.

import type { Config } from '../config/index.js';
import type { SchedulingQueue } from '../queue/index.js';
import type { Qmgr } from '../qmgr/index.js';
import type { VerifyStore } from '../verify/index.js';
import { destinationUp, enableProcessMetrics, ownReport, setQueueView, type WorkerReport } from '../observe/index.js';
import { queueGauges, queueReport, type QueueViewOptions } from '../status/index.js';

/** How long a counted verify cache size is reused (counting walks the whole cache). */
const CACHE_SIZE_TTL_MS = 60_000;
/** Counting stops here: a bigger cache is reported as at least this. */
const CACHE_SIZE_LIMIT = 1_000_000;

function viewOptions(config: Config): QueueViewOptions {
  return { maximalQueueLifetime: config.time('maximal_queue_lifetime'), watch: config.bool('backstop_destination_watch') };
}

/** The queue side's reporting: the queue gauges come from here from now on. */
export function observeQueueSide(config: Config, queue: SchedulingQueue, qmgr: Qmgr): () => Promise<WorkerReport> {
  enableProcessMetrics();
  const opts = viewOptions(config);
  setQueueView(() => queueGauges(queue, opts));
  qmgr.on('destinationUp', (domain) => destinationUp(domain));
  return async () => ({ ...(await ownReport('qmgr')), queue: queueReport(queue, opts) });
}

/** The smtpd side's reporting; `store`: count the verify cache (one process of several does). */
export function observeSmtpdSide(store?: VerifyStore): () => Promise<WorkerReport> {
  enableProcessMetrics();
  let size: { n: number; at: number } | undefined;
  const count = async (): Promise<number | undefined> => {
    if (!store) return undefined;
    if (size && Date.now() - size.at < CACHE_SIZE_TTL_MS) return size.n;
    let n = 0;
    for await (const _ of store.entries()) if (++n >= CACHE_SIZE_LIMIT) break;
    size = { n, at: Date.now() };
    return n;
  };
  return async () => {
    const r = await ownReport('smtpd');
    const n = await count().catch(() => undefined);
    return n === undefined ? r : { ...r, verifyCacheSize: n };
  };
}
