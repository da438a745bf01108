// The PostgreSQL queue store's writing side (what QueueWriter is to the file store): open() reaches
// the database, brings its schema up to date (migrations.ts) and registers this node, whose number
// gives its queue ids their own range across the cluster; begin() starts a PgTransaction. The
// hosts of the configuration are tried in order for each new connection; one in recovery (a
// standby) is skipped, so after a failover new connections find the promoted server. A database
// that stops answering is logged once (and once more when it is back), not once per message.
// readContent() streams a message's content back in its chunks (for the queue manager's side and
// the tests). Trusts PostgreSQL for durability and isolation; trusts its configuration file.

import pg from 'pg';
import type { Pool, PoolClient } from 'pg';
import { reply, SmtpError, type Envelope } from '../../mail/index.js';
import { maillog as defaultMaillog, type Maillog } from '../../log/index.js';
import { QueueIds } from '../id.js';
import type { QueueEntry } from '../entry.js';
import { logClient, logMessageId } from '../log.js';
import type { BeginOptions, QueueTransaction } from '../writer.js';
import type { PgConfig, PgHost } from './config.js';
import { clientConfig } from './connect.js';
import { migrate, type MigrationReport } from './migrations.js';
import { PgTransaction, type PgTxStore } from './transaction.js';

export interface PgQueueStoreOptions {
  config: PgConfig;
  /** This node's name when the configuration has no node_name (backstop passes myhostname). */
  nodeName: string;
  /** This process's id range within the node: 0 the queue manager, 1..256 smtpd workers. */
  slot: number;
  messageSizeLimit?: number;
  maillog?: Maillog;
  /** The message is committed; tell the queue manager. */
  onCommitted?(entry: QueueEntry): void;
  /** What an outage means for this process, in its log line; default: new mail gets 451. */
  outageEffect?: string;
}

/** How often start() tries again to reach a database that was away when the process started. */
const START_RETRY_MS = 2_000;

/** Id ranges per node: the queue manager and up to 256 smtpd workers (backstop_smtpd_workers' maximum). */
const SLOTS_PER_NODE = 257;

function poolFor(cfg: PgConfig, host: PgHost): Pool {
  const pool = new pg.Pool({ ...clientConfig(cfg, host), max: cfg.poolSize, idleTimeoutMillis: 30_000 });
  // An idle connection the server dropped: the pool discards it; the next use reconnects.
  pool.on('error', () => undefined);
  return pool;
}

export class PgQueueStore {
  readonly nodeName: string;
  private readonly pools: Pool[];
  /** The pool that last gave a connection to a primary. */
  private current = 0;
  private readonly checked = new WeakSet<object>();
  private ids!: QueueIds;
  private nodeNumber = 0;
  /** What open() found and applied of the schema migrations. */
  migration: MigrationReport = { from: 0, to: 0, applied: [] };
  private readonly tx: PgTxStore;
  private readonly log: { smtpd: ReturnType<Maillog['logger']>; cleanup: ReturnType<Maillog['logger']>; queue: ReturnType<Maillog['logger']> };
  private down = false;
  private closed = false;
  private readyNow = false;
  private readonly readyWaiters: Array<() => void> = [];
  private retryTimer: NodeJS.Timeout | null = null;

  private constructor(private readonly opts: PgQueueStoreOptions) {
    const cfg = opts.config;
    this.nodeName = cfg.nodeName ?? opts.nodeName;
    this.pools = cfg.hosts.map((h) => poolFor(cfg, h));
    const maillog = opts.maillog ?? defaultMaillog;
    this.log = { smtpd: maillog.logger('smtpd'), cleanup: maillog.logger('cleanup'), queue: maillog.logger('cleanup') };
    this.tx = {
      sizeLimit: opts.messageSizeLimit ?? 0,
      nodeName: this.nodeName,
      connect: () => this.connect(),
      failed: (err) => this.failed(err),
      worked: () => this.worked(),
      committed: (entry: QueueEntry, env: Envelope, messageId: string | undefined, client: boolean) => {
        this.ids.release(entry.id);
        if (client) logClient(this.log.smtpd, entry.id, env.client.name, env.client.address);
        logMessageId(this.log.cleanup, entry.id, messageId);
        opts.onCommitted?.(entry);
      },
      release: (id) => this.ids.release(id),
    };
  }

  /** Connect, migrate, register the node. Rejects (with the database's reason) when it cannot. */
  static async open(opts: PgQueueStoreOptions): Promise<PgQueueStore> {
    const store = new PgQueueStore(opts);
    try {
      await store.init();
      return store;
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /**
   * The store at once, whether or not the database answers: until it has been reached (and
   * migrated, and this node registered) begin() answers 451 4.3.0; it is tried again every
   * START_RETRY_MS, the outage logged once and its end once. whenReady() resolves then.
   */
  static start(opts: PgQueueStoreOptions): PgQueueStore {
    const store = new PgQueueStore(opts);
    const attempt = () => {
      store.retryTimer = null;
      if (store.closed) return;
      store.init().then(
        () => store.worked(),
        (err) => {
          store.failed(err);
          if (!store.closed) store.retryTimer = setTimeout(attempt, START_RETRY_MS);
        },
      );
    };
    attempt();
    return store;
  }

  private async init(): Promise<void> {
    const client = await this.connect();
    try {
      this.migration = await migrate(client);
      const r = await client.query<{ num: number }>(
        `INSERT INTO backstop.nodes (name) VALUES ($1)
         ON CONFLICT (name) DO UPDATE SET last_seen = now() RETURNING num`,
        [this.nodeName],
      );
      this.nodeNumber = r.rows[0].num;
      client.release();
    } catch (err) {
      client.release(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
    this.ids = new QueueIds(() => false, this.nodeNumber * SLOTS_PER_NODE + this.opts.slot);
    this.readyNow = true;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  /** The database has been reached once: the schema is current and this node registered. */
  get ready(): boolean {
    return this.readyNow;
  }

  /** Resolves once ready (at once if it is). */
  whenReady(): Promise<void> {
    return this.readyNow ? Promise.resolve() : new Promise((r) => this.readyWaiters.push(r));
  }

  /** This node's number in backstop.nodes. */
  get node(): number {
    return this.nodeNumber;
  }

  /** As QueueWriter.begin(): 451 4.3.0 when closed, 554 5.5.1 without recipients. */
  begin(env: Envelope, opts: BeginOptions = {}): QueueTransaction {
    if (this.closed) throw new SmtpError(reply(451, '4.3.0', 'Error: queue file write error'), 'queue is closed');
    if (env.recipients.length === 0) throw new SmtpError(reply(554, '5.5.1', 'Error: no valid recipients'));
    if (!this.readyNow) throw new SmtpError(reply(451, '4.3.0', 'Error: queue file write error'), 'queue database unavailable');
    return new PgTransaction(this.tx, this.ids.reserve(), env, opts.logClient ?? true);
  }

  /**
   * A connection to a primary: the hosts in order from the last good one; a server in recovery
   * (a standby) is passed over. Each physical connection is checked once.
   */
  async connect(): Promise<PoolClient> {
    let lastErr: unknown = new Error('no hosts');
    for (let i = 0; i < this.pools.length; i++) {
      const n = (this.current + i) % this.pools.length;
      let client: PoolClient;
      try {
        client = await this.pools[n].connect();
      } catch (err) {
        lastErr = err;
        continue;
      }
      if (!this.checked.has(client)) {
        try {
          const r = await client.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby');
          if (r.rows[0].standby) {
            client.release(true);
            lastErr = new Error(`${this.opts.config.hosts[n].host}:${this.opts.config.hosts[n].port} is a standby`);
            continue;
          }
          this.checked.add(client);
          // A connection the server drops while this process holds it (the database stopped
          // between two writes of a message) emits 'error': without a listener that would end
          // the process. Its next query fails and the message gets 451 instead.
          client.on('error', () => undefined);
        } catch (err) {
          client.release(err instanceof Error ? err : new Error(String(err)));
          lastErr = err;
          continue;
        }
      }
      this.current = n;
      return client;
    }
    this.failed(lastErr);
    throw lastErr;
  }

  /**
   * The content of a committed message, chunk by chunk (one row in memory at a time). A pooled
   * connection is held only while a row is fetched, not while the caller sends it on: a delivery
   * to a slow primary does not keep a connection from the claim loop or from smtpd.
   */
  async *readContent(id: string): AsyncGenerator<Buffer> {
    const fetch = async <T>(fn: (c: PoolClient) => Promise<T>): Promise<T> => {
      const client = await this.connect();
      try {
        const v = await fn(client);
        client.release();
        return v;
      } catch (err) {
        client.release(err instanceof Error ? err : new Error(String(err)));
        throw err;
      }
    };
    const r = await fetch((c) => c.query<{ chunks: number }>('SELECT chunks FROM backstop.messages WHERE id = $1', [id]));
    if (r.rowCount === 0) throw new Error(`${id}: no such message in the queue database`);
    for (let seq = 0; seq < r.rows[0].chunks; seq++) {
      const c = await fetch((cl) => cl.query<{ data: Buffer }>('SELECT data FROM backstop.content WHERE message = $1 AND seq = $2', [id, seq]));
      if (c.rowCount === 0) throw new Error(`${id}: content chunk ${seq} is missing`);
      yield c.rows[0].data;
    }
  }

  /** The database failed a request: logged once per outage. */
  failed(err: unknown): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.log.queue.warning(`queue database unavailable: ${err instanceof Error ? err.message : String(err)}; ${this.opts.outageEffect ?? 'new mail gets 451'} until it returns`);
  }

  /** The database answered: the end of an outage is logged once. */
  worked(): void {
    if (!this.down) return;
    this.down = false;
    this.log.queue.info('queue database available again');
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await Promise.all(this.pools.map((p) => p.end().catch(() => undefined)));
  }
}
