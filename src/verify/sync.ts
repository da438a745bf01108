// Knowing every mailbox before the primary fails: `verify warm` probes a list of addresses and
// `verify sync` (and the server, every backstop_verify_sync_interval) probes the addresses of a
// table the primary publishes (e.g. its relay_recipient_maps source). Both go through the
// service, so its per-destination probe bound still holds. Trusts the table for its keys; keys
// that are not full addresses (`@domain` catch-alls, bare domains) are skipped.

import type { LookupTable } from '../tables/index.js';
import { openTable } from '../tables/index.js';
import type { Logger } from '../log/index.js';
import type { VerifyService, WarmResult } from './api.js';

export interface WarmTotals {
  total: number;
  deliverable: number;
  undeliverable: number;
  deferred: number;
  cached: number;
  skipped: number;
  error: number;
}

export interface WarmOptions {
  /** Addresses in progress at once (default backstop_verify_probe_concurrency). */
  concurrency?: number;
  /** Probe even entries that are fresh. */
  force?: boolean;
  onResult?: (r: WarmResult, totals: WarmTotals) => void;
}

export function emptyTotals(): WarmTotals {
  return { total: 0, deliverable: 0, undeliverable: 0, deferred: 0, cached: 0, skipped: 0, error: 0 };
}

/** A key that names one mailbox: local@domain, nothing else. */
export function isMailboxKey(key: string): boolean {
  const at = key.lastIndexOf('@');
  return at > 0 && at < key.length - 1 && !/\s/.test(key);
}

export async function warmAddresses(verifier: VerifyService, addresses: Iterable<string> | AsyncIterable<string>, opts: WarmOptions = {}): Promise<WarmTotals> {
  const totals = emptyTotals();
  const limit = Math.max(1, opts.concurrency ?? verifier.params.backstop_verify_probe_concurrency);
  const running = new Set<Promise<void>>();
  for await (const raw of addresses) {
    const address = raw.trim();
    if (!address) continue;
    const p: Promise<void> = verifier.warm(address, { force: opts.force }).then((r) => {
      totals.total++;
      totals[r.status]++;
      opts.onResult?.(r, totals);
    });
    const tracked = p.finally(() => running.delete(tracked));
    running.add(tracked);
    if (running.size >= limit) await Promise.race(running);
  }
  await Promise.all(running);
  return totals;
}

/** The mailbox keys of a table (any listable type: hash/btree/lmdb, texthash, inline). */
export function* tableAddresses(table: LookupTable): Iterable<string> {
  if (!table.entries) throw new Error(`table ${table.ref}: sequential access is not supported for type ${table.type}`);
  for (const [k] of table.entries()) if (isMailboxKey(k)) yield k;
}

export interface SyncOptions {
  /** backstop_verify_sync_map, e.g. `hash:/etc/backstop/relay_recipients`. */
  ref: string;
  baseDir?: string;
  /** backstop_verify_sync_interval in seconds. */
  intervalSec: number;
  log: Logger;
  force?: boolean;
}

/** One sync pass: probe every mailbox of the table that the cache does not know freshly. */
export async function syncOnce(verifier: VerifyService, opts: Omit<SyncOptions, 'intervalSec'>): Promise<WarmTotals> {
  const table = openTable(opts.ref, { baseDir: opts.baseDir, warn: (m) => opts.log.warning(m) });
  try {
    const totals = await warmAddresses(verifier, tableAddresses(table), { force: opts.force });
    opts.log.info(`verify sync from ${opts.ref}: ${formatTotals(totals)}`);
    return totals;
  } finally {
    table.close();
  }
}

/** The server's schedule: a pass at start, then every interval. Returns a stopper. */
export function startVerifySync(verifier: VerifyService, opts: SyncOptions): { stop(): Promise<void> } {
  let current: Promise<unknown> | undefined;
  const run = (): void => {
    if (current) return;
    current = syncOnce(verifier, opts)
      .catch((err: Error) => opts.log.warning(`verify sync from ${opts.ref}: ${err.message}`))
      .finally(() => (current = undefined));
  };
  run();
  const timer = setInterval(run, opts.intervalSec * 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await current;
    },
  };
}

export function formatTotals(t: WarmTotals): string {
  return `${t.total} address${t.total === 1 ? '' : 'es'}: ${t.deliverable} deliverable, ${t.undeliverable} undeliverable, ${t.deferred} deferred, ${t.cached} cached, ${t.skipped} in progress elsewhere, ${t.error} errors`;
}
