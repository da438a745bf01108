// Observations made in a delivery agent thread (src/master/agents.ts) belong to the process's
// metrics and destination view, which live in its main thread: there, `forwardObservations` sends
// them to the main thread instead of counting them, and the main thread replays them with
// `replayObservation`. Everywhere else nothing is forwarded and this module changes nothing.

import { tlsSessions } from './metrics.js';
import { recordDelivery } from './destinations.js';

export type AgentObservation =
  | { k: 'delivered'; recipient: string; relay: string; status: string; text: string; now: number }
  | { k: 'tls'; direction: 'in' | 'out' };

let forward: ((o: AgentObservation) => void) | null = null;

/** In a delivery agent thread: hand every observation to `fn` instead of counting it here. */
export function forwardObservations(fn: (o: AgentObservation) => void): void {
  forward = fn;
}

/** One recipient's delivery result (the `status=` log line). Probes (deliverable/undeliverable) are not deliveries. */
export function delivered(recipient: string, relay: string, status: string, text: string, now = Date.now()): void {
  if (status !== 'sent' && status !== 'deferred' && status !== 'bounced') return;
  if (forward) return forward({ k: 'delivered', recipient, relay, status, text, now });
  recordDelivery(recipient, relay, status, text, now);
}

/** A TLS session was established (smtpd's STARTTLS: in; a delivery: out). */
export function countTlsSession(direction: 'in' | 'out'): void {
  if (forward) return forward({ k: 'tls', direction });
  tlsSessions.inc({ direction });
}

/** Count, in the main thread, what an agent thread observed. */
export function replayObservation(o: AgentObservation): void {
  if (o.k === 'tls') countTlsSession(o.direction);
  else delivered(o.recipient, o.relay, o.status, o.text, o.now);
}
