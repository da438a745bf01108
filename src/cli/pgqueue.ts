// The queue commands on a PostgreSQL queue (backstop_queue_store = postgres:FILE): mailq,
// postqueue and postsuper act on the whole cluster's queue in the database directly, from any
// node, whether or not a server runs there (docs/cluster.md, "Administration"). This file finds
// the store's configuration, opens one connection to the primary for the command and says why
// when it cannot; the SQL is src/queue/pg's (showq.ts, admin.ts). Trusts the configuration.

import { isAbsolute, resolve } from 'node:path';
import type { ClientBase } from 'pg';
import type { Config } from '../config/index.js';
import { domainListMatch } from '../qmgr/index.js';
import { connectPrimary, loadPgConfig, parseQueueStore } from '../queue/pg/index.js';

/** What the queue commands need of a PostgreSQL store. */
export interface PgStoreIo {
  /** The store's configuration file (absolute). */
  file: string;
  /** fast_flush_domains: postqueue -s flushes these even with no mail for them queued. */
  fastFlushDomains: string[];
}

/** The PostgreSQL store main.cf selects, or undefined for the file store; throws on a bad value. */
export function pgStoreOf(config: Config): PgStoreIo | undefined {
  const spec = parseQueueStore(config.str('backstop_queue_store'));
  if (spec.kind === 'file') return undefined;
  return { file: isAbsolute(spec.file) ? spec.file : resolve(config.dir, spec.file), fastFlushDomains: config.list('fast_flush_domains') };
}

/** fast_flush_domains as the queue manager matches it. */
export function flushEligible(store: PgStoreIo): (domain: string) => boolean {
  return (d) => domainListMatch(d, store.fastFlushDomains);
}

/** An error of the queue database as one line for the command's "fatal:". */
function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  // undefined_table, invalid_schema_name: no node has opened this database yet.
  if (code === '42P01' || code === '3F000') return 'the queue database has no backstop schema yet (no backstop node has opened it)';
  return err instanceof Error ? err.message : String(err);
}

export class QueueDatabaseError extends Error {
  override name = 'QueueDatabaseError';
}

/** Run `fn` on a connection of its own to the primary; any failure is a QueueDatabaseError with one line. */
export async function withQueueDatabase<T>(store: PgStoreIo, fn: (db: ClientBase) => Promise<T>): Promise<T> {
  let db: ClientBase & { end(): Promise<void> };
  try {
    db = await connectPrimary(loadPgConfig(store.file));
  } catch (err) {
    throw new QueueDatabaseError(describe(err));
  }
  try {
    return await fn(db);
  } catch (err) {
    throw new QueueDatabaseError(describe(err));
  } finally {
    await db.end().catch(() => undefined);
  }
}
