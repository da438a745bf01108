// The listing behind `mailq`, `postqueue -p` and `postqueue -j` for the PostgreSQL store: the
// whole cluster's queue, read from backstop.messages on any node (the server need not run), as
// the same ShowqMessage records the file store's listing makes, so that one formatter
// (../showq.ts) prints both. Each message carries its lease holder — the node delivering it —
// when the lease is still running; a lease that ran out is nobody's. Read-only; trusts the rows.

import type { ClientBase } from 'pg';
import { SHOWQ_QUEUES, type ShowqMessage } from '../showq.js';
import type { QueueName } from '../file.js';

/** The queues a PostgreSQL queue has (no incoming or corrupt: a message is a committed row). */
export const PG_QUEUES: readonly QueueName[] = ['active', 'deferred', 'hold'];

interface Row {
  id: string;
  queue: QueueName;
  arrival_time: Date;
  message_size: string;
  sender: string;
  recipients: string[];
  status: string;
  lease_node: string | null;
  lease_until: Date | null;
}

/** Messages in `queues` (Postfix's order: hold, active, deferred), each by arrival time then id. */
export async function listPgQueue(db: ClientBase, queues: readonly QueueName[] = SHOWQ_QUEUES): Promise<ShowqMessage[]> {
  const wanted = queues.filter((q) => PG_QUEUES.includes(q));
  const r = await db.query<Row>(
    `SELECT id, queue, arrival_time, message_size, sender, recipients, status,
            CASE WHEN lease_until >= now() THEN lease_node END AS lease_node,
            CASE WHEN lease_until >= now() THEN lease_until END AS lease_until
       FROM backstop.messages
      WHERE queue = ANY($1::text[])
      ORDER BY array_position($1::text[], queue), arrival_time, id`,
    [wanted],
  );
  return r.rows.map((x) => ({
    queueName: x.queue,
    queueId: x.id,
    arrivalTime: x.arrival_time.getTime(),
    messageSize: Number(x.message_size),
    forcedExpire: false,
    sender: x.sender,
    // Recipients still to be delivered; the database keeps no delay reason per recipient (yet).
    recipients: x.recipients.filter((_, i) => x.status[i] === 'P').map((address) => ({ address, delayReason: '' })),
    lease: x.lease_node !== null && x.lease_until !== null ? { node: x.lease_node, until: x.lease_until.getTime() } : null,
  }));
}
