// Leases on the shared queue (docs/cluster.md, "Delivery across nodes"): the building blocks the
// queue manager side will use, not yet used by it. A node claims due messages with
// SELECT … FOR UPDATE SKIP LOCKED (two nodes claiming at once never get the same message and never
// wait for each other), holds them until lease_until (the database's clock, so nodes' clocks do
// not matter), renews what it is still working on, and writes its results only while it still
// holds the lease (fencing: a node that lost its lease — paused, cut off — changes nothing).
// A node that dies simply stops renewing; once its leases have run out, another node claims them.
// Trusts PostgreSQL's row locks and clock.

import type { ClientBase } from 'pg';
import type { Envelope } from '../../mail/index.js';

export interface ClaimedMessage {
  id: string;
  queue: 'active' | 'deferred';
  envelope: Envelope;
  /** One character per recipient: P pending, D delivered, B bounced. */
  status: string;
  attempts: number;
  leaseUntil: Date;
}

export interface ClaimOptions {
  /** At most this many messages. */
  batch: number;
  /** The lease's length. */
  leaseMs: number;
}

/** Claim up to `batch` due messages (active or deferred, next_attempt reached, lease free or run out). */
export async function claimDue(db: ClientBase, node: string, opts: ClaimOptions): Promise<ClaimedMessage[]> {
  const r = await db.query<{ id: string; queue: 'active' | 'deferred'; envelope: Envelope; status: string; attempts: number; lease_until: Date }>(
    `UPDATE backstop.messages m
        SET lease_node = $1, lease_until = now() + $2 * interval '1 millisecond'
      WHERE m.id IN (SELECT id FROM backstop.messages
                      WHERE queue IN ('active', 'deferred') AND next_attempt <= now()
                        AND (lease_until IS NULL OR lease_until < now())
                      ORDER BY next_attempt, id
                      LIMIT $3
                      FOR UPDATE SKIP LOCKED)
      RETURNING m.id, m.queue, m.envelope, m.status, m.attempts, m.lease_until`,
    [node, opts.leaseMs, opts.batch],
  );
  return r.rows.map((x) => ({ id: x.id, queue: x.queue, envelope: x.envelope, status: x.status, attempts: x.attempts, leaseUntil: x.lease_until }));
}

/** Extend this node's leases on `ids`; the ids it still held (the others were lost). */
export async function renewLeases(db: ClientBase, node: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
  if (ids.length === 0) return [];
  const r = await db.query<{ id: string }>(
    `UPDATE backstop.messages SET lease_until = now() + $3 * interval '1 millisecond'
      WHERE id = ANY($2) AND lease_node = $1 AND lease_until >= now()
      RETURNING id`,
    [node, ids, leaseMs],
  );
  return r.rows.map((x) => x.id);
}

export interface AttemptResult {
  /** The recipients' new status string. */
  status: string;
  /** When to try again (the message goes to deferred); absent: stays where it is. */
  nextAttempt?: Date;
}

/**
 * Record an attempt and give the lease up — only if this node still holds it. False: the lease
 * was lost (run out and taken by another node, or never held); nothing was changed.
 */
export async function finishAttempt(db: ClientBase, node: string, id: string, result: AttemptResult): Promise<boolean> {
  const r = await db.query(
    `UPDATE backstop.messages
        SET status = $3, attempts = attempts + 1,
            queue = CASE WHEN $4::timestamptz IS NULL THEN queue ELSE 'deferred' END,
            next_attempt = coalesce($4::timestamptz, next_attempt),
            lease_node = NULL, lease_until = NULL
      WHERE id = $2 AND lease_node = $1 AND lease_until >= now()`,
    [node, id, result.status, result.nextAttempt ?? null],
  );
  return r.rowCount === 1;
}

/** Remove a message this node holds the lease of (delivered or bounced); its content goes with it. */
export async function removeLeased(db: ClientBase, node: string, id: string): Promise<boolean> {
  const r = await db.query('DELETE FROM backstop.messages WHERE id = $2 AND lease_node = $1 AND lease_until >= now()', [node, id]);
  return r.rowCount === 1;
}
