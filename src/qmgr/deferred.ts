// Deferred mail and the destination watch (beyond Postfix): the queue manager remembers which
// destinations each deferred message waits for, and while a destination is unreachable and has
// such mail, probes it every backstop_destination_probe_interval (default 1 s, with jitter;
// slower only after hours of absence, see watchDelay) through the greeting probe, all of its
// next-hop addresses at once. The moment one answers, its mail is flushed and destinationUp is
// announced (the verify service re-probes its DEFER entries). Trusts the smtp module for routing
// and resolution and the probe for "up"; sends no mail itself.

import { domainOf } from '../mail/index.js';
import type { QueueEntry } from '../queue/index.js';
import { chooseNextHop, resolveNextHop, type MxAddress } from '../smtp/index.js';
import type { Destination } from './destination.js';
import type { QmgrCore } from './core.js';

export function noteDeferred(q: QmgrCore, id: string, keys: string[]): void {
  q.forgetDeferred(id);
  q.deferredDests.set(id, keys);
  for (const k of keys) {
    const d = q.dests.get(k);
    if (!d) continue;
    d.deferred.add(id);
    if (d.unreachable) q.armWatch(d);
  }
}

export function forgetDeferred(q: QmgrCore, id: string): void {
  const keys = q.deferredDests.get(id);
  if (!keys) return;
  q.deferredDests.delete(id);
  for (const k of keys) q.dests.get(k)?.deferred.delete(id);
}

/** At start-up: find the destinations of a deferred message that is not due yet. */
export async function indexDeferred(q: QmgrCore, e: QueueEntry): Promise<void> {
  const keys = new Set<string>();
  for (let i = 0; i < e.recipients.length; i++) {
    if (e.status[i] !== 'P') continue;
    const hop = await chooseNextHop(e.recipients[i], q.delivery).catch(() => undefined);
    if (!hop || 'dsn' in hop) continue;
    const d = q.destination(hop);
    d.domains.add(domainOf(e.recipients[i]));
    // Mail deferred before the restart: the watch finds out whether its destination is back.
    d.markDown(q.now());
    keys.add(d.key);
  }
  q.noteDeferred(e.id, [...keys]);
}

/** Watch the next hop of `address` although no mail waits for it (see Qmgr.watchAddress). */
export async function watchAddress(q: QmgrCore, address: string): Promise<void> {
  const hop = await chooseNextHop(address, q.delivery).catch(() => undefined);
  if (!hop || 'dsn' in hop) return;
  const dest = q.destination(hop);
  dest.domains.add(domainOf(address));
  dest.markDown(q.now());
  dest.watchWanted = true;
  q.armWatch(dest);
}

const HOUR = 3_600_000;
/** The watch never waits longer than this between probes, however long the outage. */
export const WATCH_MAX_INTERVAL_MS = 60_000;

/**
 * Milliseconds until the next probe: the interval ×(0.9..1.1) (`random` in [0,1): jitter, so that
 * several backups do not probe in step) for the first hour of an outage — a failed connect costs
 * almost nothing, a late flush costs the users their mail — then doubling for each further hour
 * down, up to a minute (never below the interval itself).
 */
export function watchDelay(intervalMs: number, downMs: number, random: number): number {
  const hours = Math.floor(Math.max(0, downMs) / HOUR);
  const every = hours < 1 ? intervalMs : Math.max(intervalMs, Math.min(WATCH_MAX_INTERVAL_MS, intervalMs * 2 ** hours));
  return every * (0.9 + 0.2 * random);
}

export function armWatch(q: QmgrCore, dest: Destination): void {
  if (!q.running || !q.params.backstop_destination_watch || dest.watchTimer || dest.probing) return;
  if (!dest.unreachable || (dest.deferred.size === 0 && !dest.watchWanted)) return;
  const downMs = dest.downSince ? q.now() - dest.downSince : 0;
  const delay = watchDelay(q.params.backstop_destination_probe_interval * 1000, downMs, q.random());
  dest.watchTimer = setTimeout(() => {
    dest.watchTimer = null;
    void q.track(watchProbe(q, dest));
  }, delay);
  dest.watchTimer.unref();
}

/** Probe an unreachable destination with deferred mail; flush it the moment it answers. */
async function watchProbe(q: QmgrCore, dest: Destination): Promise<void> {
  if (!q.running || !dest.unreachable || (dest.deferred.size === 0 && !dest.watchWanted)) return;
  if (dest.inflight > 0) return q.armWatch(dest); // deliveries will tell
  dest.probing = true;
  let up: MxAddress | undefined;
  try {
    const r = await resolveNextHop(dest.hop, q.delivery);
    if (r.ok) {
      const timeout = Math.min(5000, Math.max(200, q.params.backstop_destination_probe_interval * 1000));
      up = await firstToAnswer(r.addresses, (a) => q.probeFn(a, timeout));
    }
  } catch (err) {
    q.log.warning(`destination ${dest.key}: probe failed: ${(err as Error).message}`);
  } finally {
    dest.probing = false;
  }
  if (!q.running) return;
  if (!up) {
    dest.stillDown(q.now(), q.params.minimal_backoff_time * 1000);
    return q.armWatch(dest);
  }
  const ids = [...dest.deferred];
  const nexthop = `${up.name}[${up.ip}]:${up.port}`;
  q.log.info(`destination ${dest.key} is reachable again: flushing ${ids.length} message${ids.length === 1 ? '' : 's'}`);
  dest.unreachable = false;
  dest.downSince = 0;
  dest.watchWanted = false;
  dest.revive();
  for (const domain of dest.domains) q.emitDestinationUp(domain, nexthop);
  for (const id of ids) q.enqueue(id, true);
}

/** Probe every address at once: the first that answers (in time order), or undefined when none does. */
export function firstToAnswer<A>(addresses: readonly A[], probe: (a: A) => Promise<boolean>): Promise<A | undefined> {
  return new Promise((resolve) => {
    let left = addresses.length;
    if (left === 0) return resolve(undefined);
    for (const a of addresses) {
      probe(a).then(
        (ok) => (ok ? resolve(a) : --left === 0 && resolve(undefined)),
        () => --left === 0 && resolve(undefined),
      );
    }
  });
}

