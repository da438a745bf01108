// Connection slots across nodes (docs/cluster.md, "Concurrency per destination across nodes"):
// per next hop at most `limit` open delivery connections from all the nodes on one queue
// database together, so that a returning primary sees its concurrency limit, not N times it.
// A slot is a session-level advisory lock pg_try_advisory_lock(key1, key2) — key1 a stable hash
// of the next hop, key2 the slot number 0..limit-1 — taken on one dedicated connection per node
// and released when the delivery connection closes. PostgreSQL drops the locks of a connection
// that dies, so a dead node's slots come back by themselves, with no timeout to tune.
//
// Fail closed: without its slot connection a node opens no new delivery connections (tryAcquire
// answers null: "no slot free now") until the connection is back; the loss and the return are
// logged once each. Deliveries already running when it was lost keep their local slot numbers;
// on reconnection their locks are taken again where still free. Trusts PostgreSQL's lock manager.

import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from '../../log/index.js';

/** What the queue manager asks before opening a connection to a next hop (the consumer's interface). */
export interface ConnectionSlots {
  /** A free slot for `nexthop` under `limit` across all nodes: its release function, or null when none is free now. */
  tryAcquire(nexthop: string, limit: number): Promise<(() => void) | null>;
}

export interface PgSlotsOptions {
  /** A new dedicated connection to the primary (connectPrimary with keepAlive). */
  connect(): Promise<pg.Client>;
  log?: Pick<Logger, 'info' | 'warning'>;
  /** Time between reconnection attempts while the connection is lost (default 5 s). */
  retryMs?: number;
}

/** key1 of a next hop's slots: the first 32 bits of its SHA-256, the same on every node and every version. */
export function slotKey(nexthop: string): number {
  return createHash('sha256').update(nexthop.toLowerCase()).digest().readInt32BE(0);
}

// One round trip finds a free slot. CASE keeps the order of evaluation: a slot this session already
// holds is never passed to pg_try_advisory_lock (session locks stack: it would succeed again), and
// LIMIT 1 stops at the first slot taken, so no other slot is locked on the way.
const ACQUIRE = `SELECT s FROM generate_series(0, $2::int - 1) AS s
  WHERE CASE WHEN s = ANY($3::int[]) THEN false ELSE pg_try_advisory_lock($1::int, s) END
  LIMIT 1`;

export class PgSlots implements ConnectionSlots {
  private client: pg.Client | null = null;
  /** Connection generation: a slot taken on an earlier connection holds no lock on this one. */
  private gen = 0;
  /** Slots held by this node's deliveries: key1 → slot → the generation whose lock backs it. */
  private readonly held = new Map<number, Map<number, number>>();
  /** Acquisitions one after the other, so each sees the slots the previous one took. */
  private chain: Promise<unknown> = Promise.resolve();
  private connecting: Promise<boolean> | null = null;
  private lastAttempt = 0;
  private down = false;
  private closed = false;

  constructor(private readonly opts: PgSlotsOptions) {}

  /** Connect now (also done on demand); true when the slot connection is up. Never rejects. */
  ready(): Promise<boolean> {
    if (this.client) return Promise.resolve(true);
    return this.reconnect();
  }

  /** Whether the slot connection is up (when it is not, every tryAcquire answers null). */
  get connected(): boolean {
    return this.client !== null;
  }

  /** Slots this node's deliveries hold for `nexthop`. */
  heldBy(nexthop: string): number {
    return this.held.get(slotKey(nexthop))?.size ?? 0;
  }

  tryAcquire(nexthop: string, limit: number): Promise<(() => void) | null> {
    if (!Number.isInteger(limit) || limit < 1) return Promise.reject(new RangeError(`connection slot limit ${limit}: expected a positive integer`));
    const run = this.chain.then(() => this.acquire(slotKey(nexthop), limit));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async acquire(key: number, limit: number): Promise<(() => void) | null> {
    const client = this.client;
    if (this.closed) return null;
    if (!client) {
      if (Date.now() - this.lastAttempt >= (this.opts.retryMs ?? 5000)) void this.reconnect();
      return null;
    }
    const mine = this.held.get(key) ?? new Map<number, number>();
    if (mine.size >= limit) return null;
    let slot: number;
    try {
      const r = await client.query<{ s: number }>(ACQUIRE, [key, limit, [...mine.keys()]]);
      if (r.rows.length === 0) return null;
      slot = r.rows[0].s;
    } catch (err) {
      // Whether the lock was taken is unknown: drop the connection (and with it every lock it holds).
      this.lost(client, err);
      return null;
    }
    if (this.client !== client) {
      // Lost while the answer was coming: that lock went with the connection.
      return null;
    }
    mine.set(slot, this.gen);
    this.held.set(key, mine);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const gen = mine.get(slot);
      mine.delete(slot);
      if (mine.size === 0 && this.held.get(key) === mine) this.held.delete(key);
      // In the same queue as the acquisitions (one statement at a time on the connection). One
      // already queued may take this slot again before the unlock runs: session locks stack, so the
      // unlock then leaves it held for that delivery, as it should be.
      const client = this.client;
      if (gen !== this.gen || !client) return;
      this.chain = this.chain.then(() => client.query('SELECT pg_advisory_unlock($1::int, $2::int)', [key, slot])).catch(() => undefined);
    };
  }

  private reconnect(): Promise<boolean> {
    if (this.connecting) return this.connecting;
    this.lastAttempt = Date.now();
    this.connecting = (async () => {
      let client: pg.Client;
      try {
        client = await this.opts.connect();
      } catch (err) {
        this.warnDown(err);
        return false;
      }
      if (this.closed) {
        await client.end().catch(() => undefined);
        return false;
      }
      client.on('error', (err) => this.lost(client, err));
      client.on('end', () => this.lost(client, new Error('connection closed')));
      const gen = this.gen + 1;
      // Deliveries still running from before the loss: take their locks again where still free.
      // A slot another node took meanwhile stays counted here until its delivery ends.
      try {
        for (const [key, slots] of this.held) {
          for (const slot of slots.keys()) {
            const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, $2::int) AS ok', [key, slot]);
            if (r.rows[0].ok) slots.set(slot, gen);
          }
        }
      } catch (err) {
        this.lost(client, err);
        this.warnDown(err);
        return false;
      }
      this.gen = gen;
      this.client = client;
      if (this.down) {
        this.down = false;
        this.opts.log?.info('connection slots: queue database connection is back; new delivery connections allowed again');
      }
      return true;
    })().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private lost(client: pg.Client, err: unknown): void {
    if (this.client === client) {
      this.client = null;
      this.warnDown(err);
    }
    // Ending the connection is what frees its locks on the server (if it is still there).
    client.end().catch(() => undefined);
  }

  private warnDown(err: unknown): void {
    if (this.down || this.closed) return;
    this.down = true;
    this.opts.log?.warning(
      `connection slots: no connection to the queue database: ${err instanceof Error ? err.message : String(err)}; no new delivery connections until it is back`,
    );
  }

  /** End the slot connection: every slot this node holds is released with it. */
  async close(): Promise<void> {
    this.closed = true;
    await this.connecting?.catch(() => undefined);
    const client = this.client;
    this.client = null;
    this.held.clear();
    if (client) await client.end().catch(() => undefined);
  }
}
