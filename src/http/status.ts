// The system as one: the master's own facts plus every worker's report, summed — the metrics with
// prom-client's AggregatorRegistry.aggregate (which works on any list of getMetricsAsJSON()
// results, so also for the queue manager, which is a child_process and not a cluster worker) and
// the status by adding up the last hour of every smtpd worker.

import { AggregatorRegistry } from 'prom-client';
import { ownReport, type MetricsJson, type Observation, type SystemStatus, type WorkerReport } from '../observe/index.js';

export interface MasterFacts {
  version: string;
  pid: number;
  /** ms since the epoch. */
  started: number;
}

function sum(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
}

export function systemStatus(master: MasterFacts, obs: Observation, now = Date.now()): SystemStatus {
  const rejects: Record<string, number> = {};
  const verify: Record<string, number> = {};
  let cacheSize: number | undefined;
  let queue: WorkerReport['queue'];
  for (const r of obs.reports) {
    sum(rejects, r.rejectsLastHour);
    sum(verify, r.verifyLastHour);
    if (r.verifyCacheSize !== undefined) cacheSize = r.verifyCacheSize;
    if (r.queue) queue = r.queue;
  }
  const hits = verify.hit ?? 0;
  const misses = verify.miss ?? 0;
  return {
    version: master.version,
    master: { pid: master.pid, started: master.started, uptime: Math.max(0, (now - master.started) / 1000) },
    workers: obs.workers,
    ...(queue ? { queue } : {}),
    verify: { ...(cacheSize !== undefined ? { cacheSize } : {}), hitsLastHour: hits, missesLastHour: misses, ...(hits + misses ? { hitRateLastHour: hits / (hits + misses) } : {}) },
    rejectsLastHour: rejects,
    missing: obs.missing,
    generated: now,
  };
}

/** The Prometheus text of every process, summed (the master's own process metrics included). */
export async function systemMetrics(obs: Observation): Promise<{ text: string; contentType: string }> {
  const mine = obs.workers.length ? [(await ownReport('all')).metrics] : [];
  const all: MetricsJson[] = [...mine, ...obs.reports.map((r) => r.metrics)];
  const registry = AggregatorRegistry.aggregate(all as Parameters<typeof AggregatorRegistry.aggregate>[0]);
  return { text: await registry.metrics(), contentType: registry.contentType };
}
