// The shapes the processes exchange about themselves (plain JSON over IPC and HTTP): what each
// worker reports when the master asks, and the system status that `backstop status --json` and the
// dashboard's /api/status print. Data only.

import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { hour, registry } from './metrics.js';

export type MetricsJson = Array<MetricObjectWithValues<MetricValue<string>>>;

/** One message as the dashboard lists it. */
export interface MessageView {
  id: string;
  queue: string;
  /** Seconds since arrival. */
  age: number;
  sender: string;
  /** Pending recipients. */
  recipients: string[];
  size: number;
  lastError?: string;
  /** ms since the epoch; 0 = now. */
  nextAttempt: number;
}

export interface DestinationView {
  destination: string;
  /** undefined: not tried yet. */
  up?: boolean;
  /** ms since the epoch: reachable (or not) since then. */
  since?: number;
  queued: number;
  /** Seconds: the oldest queued message's age. */
  oldestAge: number;
  /** ms since the epoch of the next retry, or "flush on return" when the watch flushes it. */
  nextRetry?: number | 'flush on return';
  lastDelivery?: number;
  lastError?: string;
  messages: MessageView[];
}

/** The queue manager's part of the status. */
export interface QueueReport {
  queues: Record<string, { messages: number; oldestAge: number }>;
  destinations: DestinationView[];
  /** Seconds, maximal_queue_lifetime. */
  maximalQueueLifetime: number;
  disk: { path: string; freeBytes: number; totalBytes: number } | { path: string; error: string };
}

/** What every worker answers when the master asks (`observe`). */
export interface WorkerReport {
  pid: number;
  role: 'smtpd' | 'qmgr' | 'all';
  metrics: MetricsJson;
  /** Last hour: rejects by restriction; verify lookups hit/miss. */
  rejectsLastHour: Record<string, number>;
  verifyLastHour: Record<string, number>;
  verifyCacheSize?: number;
  queue?: QueueReport;
}

export interface WorkerInfo {
  pid: number;
  role: 'smtpd' | 'qmgr';
  /** ms since the epoch. */
  started: number;
  ready: boolean;
}

/** `backstop status --json`, /api/status. */
export interface SystemStatus {
  version: string;
  master: { pid: number; started: number; uptime: number };
  workers: WorkerInfo[];
  queue?: QueueReport;
  verify: { cacheSize?: number; hitsLastHour: number; missesLastHour: number; hitRateLastHour?: number };
  rejectsLastHour: Record<string, number>;
  /** Workers that did not answer in time (their numbers are missing). */
  missing: number;
  generated: number;
}

/** This process's report (the queue part is added by the process that holds the queue). */
export async function ownReport(role: WorkerReport['role']): Promise<WorkerReport> {
  return {
    pid: process.pid,
    role,
    metrics: (await registry.getMetricsAsJSON()) as MetricsJson,
    rejectsLastHour: hour.rejects.totals(),
    verifyLastHour: hour.verify.totals(),
  };
}

/** What the master gathered from its processes. */
export interface Observation {
  workers: WorkerInfo[];
  reports: WorkerReport[];
  /** Processes asked that did not answer in time. */
  missing: number;
}
