// One message into the PostgreSQL queue (the QueueTransaction of writer.ts, on a database):
// the first write() takes a pooled connection and opens a database transaction; the content goes
// in as it arrives, in chunks of CHUNK_BYTES inserted into backstop.content (each insert awaited
// before more content is read, so a 10 MB message never sits whole in memory); commit() inserts
// the envelope into backstop.messages and sends COMMIT — it resolves only once PostgreSQL has
// answered the COMMIT, so smtpd's 250 never precedes durability (and, with synchronous_commit
// and a synchronous standby, replication: docs/cluster.md). Any failure rolls back: nothing
// half-written is ever visible (content rows without their message cannot commit: the foreign key
// is checked at COMMIT). A database that cannot be reached or fails is 451 4.3.0 (its disk full:
// 452 4.3.1); over message_size_limit is 552 5.3.4, as in the file store.
// A COMMIT whose answer is lost (the connection dropped during it) is reported as 451: the client
// sends again and the message may exist twice — never zero times.
// Trusts its callers as FileTransaction does.

import pg from 'pg';
import type { PoolClient } from 'pg';
import { SmtpError, type Envelope } from '../../mail/index.js';
import type { QueueEntry } from '../entry.js';
import { ERR_STORAGE, ERR_WRITE, committedEntry, consume } from '../txparts.js';
import { TransactionBase } from '../txbase.js';

/** Content per backstop.content row. */
export const CHUNK_BYTES = 256 * 1024;

/** What a transaction needs from its store. */
export interface PgTxStore {
  readonly sizeLimit: number;
  readonly nodeName: string;
  /** A pooled connection to the primary; rejects when none can be had in connect_timeout. */
  connect(): Promise<PoolClient>;
  /** The database failed (logged once by the store until it works again). */
  failed(err: unknown): void;
  /** The database worked. */
  worked(): void;
  committed(entry: QueueEntry, env: Envelope, messageId: string | undefined, logClient: boolean): void;
  release(id: string): void;
}


/** PostgreSQL's disk_full (53100) and out of memory/resources (53xxx) are storage errors. */
export function pgStorageError(err: unknown): SmtpError {
  if (err instanceof SmtpError) return err;
  const code = (err as { code?: string })?.code ?? '';
  const msg = err instanceof Error ? err.message : String(err);
  return new SmtpError(code.startsWith('53') ? ERR_STORAGE() : ERR_WRITE(), `queue database: ${msg}`);
}

/**
 * The database is away or cannot work (no connection, timeout, connection lost, admin shutdown,
 * resources, system error) — as opposed to an error about this one statement.
 */
export function isOutage(err: unknown): boolean {
  if (err instanceof SmtpError) return false;
  if (!(err instanceof pg.DatabaseError)) return true; // network, timeout, pool: no answer at all
  return ['08', '53', '57', '58', 'XX'].includes((err.code ?? '').slice(0, 2));
}

export class PgTransaction extends TransactionBase {
  private client: PoolClient | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private seq = 0;

  constructor(
    private readonly store: PgTxStore,
    id: string,
    env: Envelope,
    logClient: boolean,
  ) {
    super(id, env, logClient, store.sizeLimit, (i) => store.release(i));
  }

  /** The transaction's connection, with BEGIN sent (the first time). */
  private async open(): Promise<PoolClient> {
    if (this.client) return this.client;
    const client = await this.store.connect();
    this.client = client;
    await client.query('BEGIN');
    return client;
  }

  protected async writeNow(content: AsyncIterable<Buffer | string> | Iterable<Buffer | string>): Promise<void> {
    this.usable();
    // As in the file store: after a failure the rest of the content is still read (the client's
    // DATA stream is consumed) and the error is thrown at the end.
    let opened: unknown = null;
    try {
      await this.open();
    } catch (err) {
      opened = err;
    }
    const failure = await consume(
      content,
      async (chunk) => {
        if (this.state === 'aborted') throw new SmtpError(ERR_WRITE(), `${this.id}: transaction aborted`);
        await this.append(chunk);
      },
      opened,
    );
    if (failure) throw await this.fail(failure);
  }

  private async append(chunk: Buffer): Promise<void> {
    if (chunk.length === 0) return;
    this.account(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes >= CHUNK_BYTES) {
      const all = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [all.subarray(CHUNK_BYTES)];
      this.pendingBytes = all.length - CHUNK_BYTES;
      await this.insertChunk(all.subarray(0, CHUNK_BYTES));
    }
  }

  private async insertChunk(data: Buffer): Promise<void> {
    await this.client!.query('INSERT INTO backstop.content (message, seq, data) VALUES ($1, $2, $3)', [this.id, this.seq++, data]);
  }

  protected async commitNow(queue: 'active' | 'deferred' | 'hold'): Promise<string> {
    this.usable();
    this.messageId = this.messageIdScan.finish();
    try {
      const client = await this.open();
      if (this.pendingBytes > 0) await this.insertChunk(Buffer.concat(this.pending, this.pendingBytes));
      this.pending = [];
      this.pendingBytes = 0;
      const env = this.env;
      await client.query(
        `INSERT INTO backstop.messages (id, queue, arrival_time, accepted_by, sender, recipients, status, envelope, message_size, message_id, chunks)
         VALUES ($1, $2, to_timestamp($3::double precision / 1000), $4, $5, $6, $7, $8, $9, $10, $11)`,
        [this.id, queue, env.arrivalTime, this.store.nodeName, env.sender, env.recipients.map((r) => r.address), 'P'.repeat(env.recipients.length), JSON.stringify(env), this.size, this.messageId ?? null, this.seq],
      );
      await client.query('COMMIT');
    } catch (err) {
      throw await this.fail(err);
    }
    this.store.worked();
    this.client!.release();
    this.client = null;
    this.markCommitted();
    this.store.committed(committedEntry(this.id, queue, this.env, this.size, 0), this.env, this.messageId, this.logClient);
    return this.id;
  }

  /** Record the failure (an outage is logged once by the store), roll back, return the reply. */
  protected override async fail(err: unknown): Promise<SmtpError> {
    if (isOutage(err)) this.store.failed(err);
    return super.fail(err);
  }

  protected asReply(err: unknown): SmtpError {
    return pgStorageError(err);
  }

  /** A failure that is not a reply of ours (the database's or the connection's) breaks the connection. */
  protected discard(cause?: unknown): Promise<void> {
    return this.rollback(cause === undefined || cause instanceof SmtpError ? undefined : cause);
  }

  /**
   * ROLLBACK and give the connection back; a connection that failed (or whose ROLLBACK fails) is
   * destroyed instead, so the pool never hands out one in an unknown state.
   */
  private async rollback(broken?: unknown): Promise<void> {
    const client = this.client;
    this.client = null;
    this.pending = [];
    this.pendingBytes = 0;
    if (!client) return;
    if (broken) {
      client.release(broken instanceof Error ? broken : new Error(String(broken)));
      return;
    }
    try {
      await client.query('ROLLBACK');
      client.release();
    } catch (err) {
      client.release(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
