// Deferred mail and the destination watch (beyond Postfix): the queue manager remembers which
// destinations each deferred message waits for, and while a destination is unreachable and has
// such mail, probes it every backstop_destination_probe_interval (with jitter) through the
// greeting probe. The moment it answers, its mail is flushed and destinationUp is announced (the
// verify service re-probes its DEFER entries). Trusts the smtp module for routing and
// resolution and the probe for "up"; sends no mail itself.

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
    d.unreachable = true;
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
  dest.unreachable = true;
  dest.watchWanted = true;
  q.armWatch(dest);
}

export function armWatch(q: QmgrCore, dest: Destination): void {
  if (!q.running || !q.params.backstop_destination_watch || dest.watchTimer || dest.probing) return;
  if (!dest.unreachable || (dest.deferred.size === 0 && !dest.watchWanted)) return;
  const base = q.params.backstop_destination_probe_interval * 1000;
  const delay = base * (0.9 + 0.2 * q.random());
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
      for (const a of r.addresses) {
        if (await q.probeFn(a, timeout)) {
          up = a;
          break;
        }
      }
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
  dest.watchWanted = false;
  dest.revive();
  for (const domain of dest.domains) q.emitDestinationUp(domain, nexthop);
  for (const id of ids) q.enqueue(id, true);
}
