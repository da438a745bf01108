// What the delivery client and the destination watch last saw of each destination (recipient
// domain): reachable or not and since when, the last delivery, the last error. Fed by `delivered`
// (every delivery result line, sent/deferred/bounced) and `destinationUp` (the watch saw a
// greeting); read by the queue manager's status view. "Reachable" means a next hop answered:
// relay=none (no connection, or a dead destination's deferral without an attempt) means down.

import { deliveryAttempts } from './metrics.js';

export interface DestinationState {
  up?: boolean;
  /** ms since the epoch: when `up` took its current value. */
  since?: number;
  lastAttempt?: number;
  lastDelivery?: number;
  lastError?: string;
}

/** How long a destination without queued mail stays in view after its last attempt. */
const KEEP_MS = 3600_000;
/** A bound on the map, whatever the traffic (oldest first out). */
const MAX_DESTINATIONS = 10_000;

const states = new Map<string, DestinationState>();

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return (at >= 0 ? address.slice(at + 1) : address).toLowerCase();
}

function state(domain: string): DestinationState {
  let s = states.get(domain);
  if (!s) {
    s = {};
    states.set(domain, s);
    if (states.size > MAX_DESTINATIONS) states.delete(states.keys().next().value as string);
  }
  return s;
}

function setUp(s: DestinationState, up: boolean, now: number): void {
  if (s.up !== up) {
    s.up = up;
    s.since = now;
  }
}

/** One delivery result (sent, deferred or bounced), in this thread (forward.ts's `delivered` calls it). */
export function recordDelivery(recipient: string, relay: string, status: string, text: string, now: number): void {
  const domain = domainOf(recipient);
  deliveryAttempts.inc({ destination: domain, status });
  const s = state(domain);
  s.lastAttempt = now;
  setUp(s, relay !== 'none', now);
  if (status === 'sent') s.lastDelivery = now;
  else s.lastError = text;
}

/** The destination watch saw `domain`'s next hop answer. */
export function destinationUp(domain: string, now = Date.now()): void {
  setUp(state(domain.toLowerCase()), true, now);
}

/** The destinations with an attempt (or a watch answer) in the last hour. */
export function recentDestinations(now = Date.now()): string[] {
  return [...states].filter(([, s]) => (s.lastAttempt ?? s.since ?? 0) >= now - KEEP_MS).map(([d]) => d);
}

/** The state of one destination, seen or not. */
export function destinationState(domain: string): DestinationState {
  return states.get(domain) ?? {};
}
