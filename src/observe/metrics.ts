// The process's own numbers: Prometheus counters (prom-client) that the services bump at the
// point of decision — smtpd's connections, accepts and rejects, the delivery client's attempts,
// verify's cache lookups and probes, TLS sessions both ways — and the queue gauges, which the one
// process holding the queue (the queue manager) fills from its own view when asked (`setQueueView`).
// Every process of the system keeps its own registry; the master asks each worker for
// `registry.getMetricsAsJSON()` and sums them (src/http/metrics.ts). Besides the Prometheus
// totals, the last hour is kept per minute (`hour`) for `backstop status`. Imports nothing of
// ours: any module may count here.

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { HourWindow } from './window.js';

export const registry = new Registry();

let processMetrics = false;
/** Node's default process metrics (CPU, memory, event loop) in this process's registry; once. */
export function enableProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry });
}

const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
  new Counter<L>({ name, help, labelNames, registers: [registry] });

export const smtpdConnections = counter('backstop_smtpd_connections_total', 'SMTP connections accepted by smtpd.');
export const smtpdAccepted = counter('backstop_smtpd_messages_accepted_total', 'Messages smtpd answered 250 queued as.');
export const smtpdRejects = counter('backstop_smtpd_rejects_total', 'smtpd rejects by reply code and the restriction that decided.', ['code', 'restriction']);
export const deliveryAttempts = counter('backstop_delivery_attempts_total', 'Delivery results per recipient by destination (recipient domain) and status.', ['destination', 'status']);
export const bounces = counter('backstop_bounces_total', 'Recipients returned to the sender in a non-delivery notice (refused or expired).');
export const verifyLookups = counter('backstop_verify_cache_lookups_total', 'Address verification lookups answered from the cache (hit) or waiting for a probe (miss).', ['result']);
export const verifyProbes = counter('backstop_verify_probes_total', 'Address verification probes by result.', ['status']);
export const tlsSessions = counter('backstop_tls_sessions_total', 'TLS sessions established, in (smtpd STARTTLS) and out (delivery).', ['direction']);

/** The last hour, per minute, of what `backstop status` shows (rejects by restriction, verify hit rate). */
export const hour = {
  rejects: new HourWindow(),
  verify: new HourWindow(),
};

/** One queue as its manager sees it. */
export interface QueueGauge {
  queue: string;
  messages: number;
  oldestAgeSeconds: number;
}

/** One destination (recipient domain) with queued mail or a delivery in the last hour. */
export interface DestinationGauge {
  destination: string;
  /** The last attempt or watch probe reached its next hop; undefined when never tried. */
  up?: boolean;
  queued: number;
  /** ms since the epoch; undefined: none in this process's life. */
  lastDelivery?: number;
}

export interface QueueGauges {
  queues: QueueGauge[];
  destinations: DestinationGauge[];
}

let queueView: (() => QueueGauges) | undefined;
/** The queue manager's process says where the queue gauges come from (undefined: not here). */
export function setQueueView(view: (() => QueueGauges) | undefined): void {
  queueView = view;
}

const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: (g: Gauge<L>, v: QueueGauges) => void) =>
  new Gauge<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect(this: Gauge<L>) {
      this.reset();
      const v = queueView?.();
      if (v) fill(this, v);
    },
  });

gauge('backstop_queue_messages', 'Messages in each queue.', ['queue'], (g, v) => {
  for (const q of v.queues) g.set({ queue: q.queue }, q.messages);
});
gauge('backstop_queue_oldest_message_age_seconds', 'Age of the oldest message in each queue (0 when empty).', ['queue'], (g, v) => {
  for (const q of v.queues) g.set({ queue: q.queue }, q.oldestAgeSeconds);
});
gauge('backstop_destination_up', '1 when the last delivery attempt or watch probe reached the next hop, 0 when not.', ['destination'], (g, v) => {
  for (const d of v.destinations) if (d.up !== undefined) g.set({ destination: d.destination }, d.up ? 1 : 0);
});
gauge('backstop_destination_queued_messages', 'Messages queued with a pending recipient at the destination.', ['destination'], (g, v) => {
  for (const d of v.destinations) g.set({ destination: d.destination }, d.queued);
});
gauge('backstop_destination_last_delivery_timestamp_seconds', 'When mail was last delivered to the destination.', ['destination'], (g, v) => {
  for (const d of v.destinations) if (d.lastDelivery !== undefined) g.set({ destination: d.destination }, Math.floor(d.lastDelivery / 1000));
});

/** smtpd refused something: by reply code and the restriction that decided. */
export function countReject(code: number, restriction = 'other'): void {
  smtpdRejects.inc({ code: String(code), restriction });
  hour.rejects.add(restriction);
}

/** A verify lookup answered from the cache (hit) or waiting for a probe (miss). */
export function countVerifyLookup(result: 'hit' | 'miss'): void {
  verifyLookups.inc({ result });
  hour.verify.add(result);
}
