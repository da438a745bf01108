// Leases on the shared queue (docs/cluster.md, "Delivery across nodes"): the building blocks of
// the queue manager side (PgQueue, queue.ts). A node claims due messages with
// SELECT … FOR UPDATE SKIP LOCKED (two nodes claiming at once never get the same message and never
// wait for each other), holds them until lease_until (the database's clock, so nodes' clocks do
// not matter), renews what it is still working on, and writes its results only while it still
// holds the lease (fencing: a node that lost its lease — paused, cut off — changes nothing).
// A node that dies simply stops renewing; once its leases have run out, another node claims them.
// Trusts PostgreSQL's row locks and clock.

import type { ClientBase } from 'pg';
import type { Envelope } from '../../mail/index.js';

/** What a node keeps of a message beyond its status letters (column `state`, migration 2). */
export interface DeliveryState {
  lastReason?: string;
  delayWarningSent?: boolean;
  forcedExpire?: boolean;
  /** Per recipient: the last result's text, DSN, remote MTA and diagnostic (null: none yet). */
  results?: Array<{ reason?: string; dsn?: string; remoteMta?: string; diagnosticCode?: string; time?: number } | null>;
}

export interface ClaimedMessage {
  id: string;
  queue: 'active' | 'deferred';
  envelope: Envelope;
  /** One character per recipient: P pending, D delivered, B bounced. */
  status: string;
  attempts: number;
  leaseUntil: Date;
  messageSize: number;
  messageId: string | null;
  nextAttempt: Date;
  state: DeliveryState;
}

const RETURNING = 'm.id, m.queue, m.envelope, m.status, m.attempts, m.lease_until, m.message_size, m.message_id, m.next_attempt, m.state';

interface Row {
  id: string;
  queue: 'active' | 'deferred';
  envelope: Envelope;
  status: string;
  attempts: number;
  lease_until: Date;
  message_size: string;
  message_id: string | null;
  next_attempt: Date;
  state: DeliveryState | null;
}

function claimed(x: Row): ClaimedMessage {
  return {
    id: x.id, queue: x.queue, envelope: x.envelope, status: x.status, attempts: x.attempts, leaseUntil: x.lease_until,
    messageSize: Number(x.message_size), messageId: x.message_id, nextAttempt: x.next_attempt, state: x.state ?? {},
  };
}

export interface ClaimOptions {
  /** At most this many messages. */
  batch: number;
  /** The lease's length. */
  leaseMs: number;
}

/** Claim up to `batch` due messages (active or deferred, next_attempt reached, lease free or run out). */
export async function claimDue(db: ClientBase, node: string, opts: ClaimOptions): Promise<ClaimedMessage[]> {
  const r = await db.query<Row>(
    `UPDATE backstop.messages m
        SET lease_node = $1, lease_until = now() + $2 * interval '1 millisecond'
      WHERE m.id IN (SELECT id FROM backstop.messages
                      WHERE queue IN ('active', 'deferred') AND next_attempt <= now()
                        AND (lease_until IS NULL OR lease_until < now())
                      ORDER BY next_attempt, id
                      LIMIT $3
                      FOR UPDATE SKIP LOCKED)
      RETURNING ${RETURNING}`,
    [node, opts.leaseMs, opts.batch],
  );
  return r.rows.map(claimed);
}

/**
 * Claim one message whatever its next attempt time (a flush, a destination back): only when no
 * other node holds a live lease on it. Null: held elsewhere, on hold, or gone.
 */
export async function claimOne(db: ClientBase, node: string, id: string, leaseMs: number): Promise<ClaimedMessage | null> {
  const r = await db.query<Row>(
    `UPDATE backstop.messages m
        SET lease_node = $1, lease_until = now() + $3 * interval '1 millisecond'
      WHERE m.id = $2 AND m.queue IN ('active', 'deferred')
        AND (m.lease_until IS NULL OR m.lease_until < now() OR m.lease_node = $1)
      RETURNING ${RETURNING}`,
    [node, id, leaseMs],
  );
  return r.rows.length ? claimed(r.rows[0]) : null;
}

/**
 * Record recipient results during an attempt, keeping the lease (delivered and bounced
 * recipients are written at once, so that another node never delivers them again). False: the
 * lease was lost; nothing was changed.
 */
export async function recordStatus(db: ClientBase, node: string, id: string, status: string, state: DeliveryState): Promise<boolean> {
  const r = await db.query(
    `UPDATE backstop.messages SET status = $3, state = $4
      WHERE id = $2 AND lease_node = $1 AND lease_until >= now()`,
    [node, id, status, JSON.stringify(state)],
  );
  return r.rowCount === 1;
}

/**
 * A destination answers again (the destination watch): every deferred message with a recipient
 * in `domain` is due now, on every node, and the nodes are told (LISTEN backstop_flush). The
 * number of messages made due.
 */
export async function flushDomainRows(db: ClientBase, domain: string): Promise<number> {
  const r = await db.query(
    `UPDATE backstop.messages SET next_attempt = now()
      WHERE queue = 'deferred' AND next_attempt > now()
        AND EXISTS (SELECT 1 FROM unnest(recipients) AS rc(a) WHERE lower(a) LIKE '%@' || $1)`,
    [domain.toLowerCase().replace(/[\\%_]/g, (c) => '\\' + c)],
  );
  await db.query(`SELECT pg_notify('backstop_flush', $1)`, [domain.toLowerCase()]);
  return r.rowCount ?? 0;
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
  /** The delivery state to keep (absent: unchanged). */
  state?: DeliveryState;
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
        SET status = $3, attempts = attempts + 1, state = coalesce($5::jsonb, state),
            queue = CASE WHEN $4::timestamptz IS NULL THEN queue ELSE 'deferred' END,
            next_attempt = coalesce($4::timestamptz, next_attempt),
            lease_node = NULL, lease_until = NULL
      WHERE id = $2 AND lease_node = $1 AND lease_until >= now()`,
    [node, id, result.status, result.nextAttempt ?? null, result.state ? JSON.stringify(result.state) : null],
  );
  return r.rowCount === 1;
}

/** Remove a message this node holds the lease of (delivered or bounced); its content goes with it. */
export async function removeLeased(db: ClientBase, node: string, id: string): Promise<boolean> {
  const r = await db.query('DELETE FROM backstop.messages WHERE id = $2 AND lease_node = $1 AND lease_until >= now()', [node, id]);
  return r.rowCount === 1;
}

/** Give up this node's leases on `ids` untouched (a clean stop): other nodes may claim them at once. */
export async function releaseLeases(db: ClientBase, node: string, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await db.query('UPDATE backstop.messages SET lease_node = NULL, lease_until = NULL WHERE id = ANY($2) AND lease_node = $1', [node, ids]);
  return r.rowCount ?? 0;
}
