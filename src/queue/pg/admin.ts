// The administrator's operations on the whole cluster's queue (PostgreSQL store), from any node,
// whether or not its server runs: postsuper's delete, hold, release and requeue as one DELETE or
// UPDATE each on the shared rows (the same selections and default queues as the file store's
// ../admin.ts), and the fast flush of postqueue -f, postqueue -s and smtpd's ETRN: deferred rows
// made due now and NOTIFY backstop_flush, '<domain>' ('' for everything), which every node's
// queue manager LISTENs for.
//
// An administrator's decision wins over a delivery in progress: deleting, holding or requeueing a
// message another node holds the lease of clears the lease (or the row), so that node's late
// result — written WHERE lease_node = its name (leases.ts) — changes nothing. A delivery already
// under way still ends at the peer: a held or requeued message it delivered is delivered again
// after release (as with Postfix, which may also finish an active message being held).
// Trusts PostgreSQL's row locks; checks queue ids and queue names itself.

import type { ClientBase } from 'pg';
import { ADMIN_DEFAULT_QUEUES, type AdminOp, type AdminResult, type AdminSelection } from '../admin.js';
import { isValidQueueId } from '../id.js';
import { PG_QUEUES } from './showq.js';

/** The channel the queue managers LISTEN on; the payload is a domain, or '' for all deferred mail. */
export const FLUSH_CHANNEL = 'backstop_flush';

/** Each operation's statement: $1 the queues, $2 the ids (NULL: all of them in those queues). */
const STATEMENTS: Record<AdminOp, string> = {
  delete: `DELETE FROM backstop.messages WHERE queue = ANY($1::text[]) AND ($2::text[] IS NULL OR id = ANY($2::text[])) RETURNING id`,
  hold: `UPDATE backstop.messages SET queue = 'hold', lease_node = NULL, lease_until = NULL
          WHERE queue = ANY($1::text[]) AND queue <> 'hold' AND ($2::text[] IS NULL OR id = ANY($2::text[])) RETURNING id`,
  release: `UPDATE backstop.messages SET queue = 'deferred'
             WHERE queue = ANY($1::text[]) AND queue = 'hold' AND ($2::text[] IS NULL OR id = ANY($2::text[])) RETURNING id`,
  // As the file store's requeue: due now, in deferred (held mail is released too), tried afresh.
  requeue: `UPDATE backstop.messages SET queue = 'deferred', next_attempt = now(), lease_node = NULL, lease_until = NULL
             WHERE queue = ANY($1::text[]) AND ($2::text[] IS NULL OR id = ANY($2::text[])) RETURNING id`,
};

/** postsuper -d/-h/-H/-r on the shared queue: the ids it applied to (in the order asked; ALL: by id). */
export async function applyPgAdmin(db: ClientBase, op: AdminOp, sel: AdminSelection): Promise<AdminResult> {
  const queues = (sel.queues && sel.queues.length ? sel.queues : ADMIN_DEFAULT_QUEUES[op]).filter((q) => PG_QUEUES.includes(q));
  const ids = sel.ids === 'ALL' ? null : sel.ids.filter(isValidQueueId);
  if (queues.length === 0 || (ids && ids.length === 0)) return { ids: [], count: 0 };
  const r = await db.query<{ id: string }>(STATEMENTS[op], [queues, ids]);
  const done = new Set(r.rows.map((x) => x.id));
  const ordered = ids ? [...new Set(ids)].filter((id) => done.has(id)) : [...done].sort();
  return { ids: ordered, count: ordered.length };
}

export type PgFlushStatus = 'ok' | 'bad' | 'deny';

/** The domain of an address as src/mail's domainOf: after the last '@', lower case, no final dot. */
const DOMAIN_OF = (col: string) => `lower(regexp_replace(coalesce(substring(${col} from '@([^@]*)$'), ''), '\\.$', ''))`;

/**
 * postqueue -f (no site): every deferred message due now. postqueue -s / ETRN (a site): the
 * deferred messages with a recipient still to deliver in that domain; a domain with no such mail
 * anywhere in the queue is flushed only when `eligible` says so (fast_flush_domains), else
 * 'deny'; a malformed one is 'bad'. The NOTIFY goes out with the UPDATE's commit.
 */
export async function flushPg(db: ClientBase, site?: string, eligible: (domain: string) => boolean = () => false): Promise<{ status: PgFlushStatus; flushed: number }> {
  if (site === undefined) {
    const r = await db.query<{ n: string }>(
      `WITH u AS (UPDATE backstop.messages SET next_attempt = now() WHERE queue = 'deferred' RETURNING 1)
       SELECT (SELECT count(*) FROM u) AS n, pg_notify($1, '')`,
      [FLUSH_CHANNEL],
    );
    return { status: 'ok', flushed: Number(r.rows[0].n) };
  }
  const s = site.trim();
  if (!s || /[\s@]/.test(s) || s.length > 255) return { status: 'bad', flushed: 0 };
  const domain = s.toLowerCase().replace(/\.$/, '').replace(/^\[(.*)\]$/, '$1');
  const r = await db.query<{ has: boolean; n: string }>(
    `WITH hit AS (SELECT m.id, m.queue FROM backstop.messages m
                   WHERE EXISTS (SELECT 1 FROM unnest(m.recipients) WITH ORDINALITY AS r(addr, n)
                                  WHERE substr(m.status, r.n::int, 1) = 'P' AND ${DOMAIN_OF('r.addr')} = $2)),
          u AS (UPDATE backstop.messages SET next_attempt = now()
                 WHERE id IN (SELECT id FROM hit WHERE queue = 'deferred') RETURNING 1),
          has AS (SELECT EXISTS (SELECT 1 FROM hit) AS has)
     SELECT has.has, (SELECT count(*) FROM u) AS n,
            CASE WHEN has.has OR $3 THEN pg_notify($1, $2) END
       FROM has`,
    [FLUSH_CHANNEL, domain, eligible(domain)],
  );
  const row = r.rows[0];
  if (!row.has && !eligible(domain)) return { status: 'deny', flushed: 0 };
  return { status: 'ok', flushed: Number(row.n) };
}

/**
 * smtpd's ETRN on the shared queue (the shape of smtpd's Flusher): true when the domain was
 * flushed, false when it is not eligible or malformed. A database error rejects (ETRN answers 458).
 */
export function pgFlusher(connect: () => Promise<ClientBase & { release(err?: Error | boolean): void }>, eligible: (domain: string) => boolean) {
  return {
    async flushDomain(domain: string): Promise<boolean> {
      const client = await connect();
      try {
        const r = await flushPg(client, domain, eligible);
        client.release();
        return r.status === 'ok';
      } catch (err) {
        client.release(err instanceof Error ? err : true);
        throw err;
      }
    },
  };
}
