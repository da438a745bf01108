// The claim loop of a node on the shared queue (docs/cluster.md, "Delivery across nodes"): claims
// due messages (claimDue) in batches while there are some and this node holds fewer than maxHeld,
// every pollMs and at once when asked (soon(): a message committed on this node; a NOTIFY
// backstop_flush from any node); renews this node's leases every third of the lease's length and
// reports the ones it lost; keeps one connection LISTENing on backstop_flush (payload '' =
// everything, or a domain), opened again after the database was away. While the database is away
// nothing is claimed — deliveries pause — and the store logs the outage once each way. Every
// timer is unref'd and stop() waits for the round in flight. Trusts PostgreSQL's clock and locks.

import type { PoolClient } from 'pg';
import type { Logger } from '../../log/index.js';
import { claimDue, renewLeases, type ClaimedMessage } from './leases.js';
import type { PgQueueStore } from './store.js';

export interface ClaimerOptions {
  store: PgQueueStore;
  leaseMs: number;
  batch: number;
  maxHeld: number;
  pollMs: number;
  /** The ids this node holds a lease on now. */
  leasedIds(): string[];
  claimed(m: ClaimedMessage): void;
  /** A lease this node no longer holds. */
  lost(id: string): void;
  /** A NOTIFY backstop_flush arrived (after the claim it caused). */
  flush(payload: string): void;
  log: Logger;
}

/** Claim rounds in a row before the loop yields to the poll timer (bounded work per wake-up). */
const MAX_ROUNDS = 50;

export class Claimer {
  private pollTimer: NodeJS.Timeout | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private running = false;
  private round: Promise<void> | null = null;
  private again = false;
  private listener: PoolClient | null = null;
  private readonly flushes: string[] = [];
  /** The last round stopped because this node held enough, not because nothing was due. */
  private moreDue = false;

  constructor(private readonly o: ClaimerOptions) {}

  start(): void {
    this.running = true;
    const poll = () => {
      this.soon();
      this.pollTimer = setTimeout(poll, this.o.pollMs);
      this.pollTimer.unref();
    };
    void this.o.store.whenReady().then(() => this.running && poll());
    const renew = () => {
      void this.renew().finally(() => {
        if (!this.running) return;
        this.renewTimer = setTimeout(renew, Math.max(100, Math.floor(this.o.leaseMs / 3)));
        this.renewTimer.unref();
      });
    };
    this.renewTimer = setTimeout(renew, Math.max(100, Math.floor(this.o.leaseMs / 3)));
    this.renewTimer.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.renewTimer) clearTimeout(this.renewTimer);
    await this.round?.catch(() => undefined);
    const l = this.listener;
    this.listener = null;
    if (l) {
      l.removeAllListeners('notification');
      await l.query('UNLISTEN backstop_flush').catch(() => undefined);
      l.release(true);
    }
  }

  /**
   * This node finished work: claim now if the last round left due messages behind (so that a
   * draining node does not wait for the next poll), else wait for the poll.
   */
  more(): void {
    if (this.moreDue) this.soon();
  }

  /** Claim now (or right after the round in flight). */
  soon(): void {
    if (!this.running || !this.o.store.ready) return;
    if (this.round) {
      this.again = true;
      return;
    }
    this.round = this.claimRounds().finally(() => {
      this.round = null;
      if (this.again && this.running) {
        this.again = false;
        this.soon();
      }
    });
  }

  private async claimRounds(): Promise<void> {
    let client: PoolClient;
    try {
      client = await this.o.store.connect();
    } catch {
      return; // the store logged the outage
    }
    try {
      await this.ensureListening();
      this.moreDue = false;
      for (let i = 0; i < MAX_ROUNDS && this.running; i++) {
        const room = this.o.maxHeld - this.o.leasedIds().length;
        if (room <= 0) {
          this.moreDue = true;
          break;
        }
        const got = await claimDue(client, this.o.store.nodeName, { batch: Math.min(this.o.batch, room), leaseMs: this.o.leaseMs });
        for (const m of got) this.o.claimed(m);
        if (got.length < Math.min(this.o.batch, room)) break;
        this.moreDue = true;
      }
      client.release();
      this.o.store.worked();
    } catch (err) {
      client.release(err instanceof Error ? err : undefined);
      this.o.store.failed(err);
    }
    for (const p of this.flushes.splice(0)) this.o.flush(p);
  }

  private async renew(): Promise<void> {
    const ids = this.o.leasedIds();
    if (!ids.length || !this.o.store.ready) return;
    let client: PoolClient;
    try {
      client = await this.o.store.connect();
    } catch {
      return;
    }
    try {
      const kept = new Set(await renewLeases(client, this.o.store.nodeName, ids, this.o.leaseMs));
      client.release();
      this.o.store.worked();
      // Held when the renewal started and not renewed: run out (this node was too slow) or taken.
      const still = new Set(this.o.leasedIds());
      const lost = ids.filter((id) => !kept.has(id) && still.has(id));
      if (lost.length) this.o.log.warning(`${lost.length} message lease(s) ran out before renewal; another node may deliver them`);
      for (const id of lost) this.o.lost(id);
    } catch (err) {
      client.release(err instanceof Error ? err : undefined);
      this.o.store.failed(err);
    }
  }

  /** One connection LISTENs on backstop_flush; a dropped one is replaced at the next round. */
  private async ensureListening(): Promise<void> {
    if (this.listener || !this.running) return;
    const l = await this.o.store.connect();
    const drop = () => {
      if (this.listener !== l) return;
      this.listener = null;
      l.release(true);
    };
    l.on('error', drop);
    l.on('end', drop);
    l.on('notification', (n) => {
      if (n.channel !== 'backstop_flush') return;
      this.flushes.push(n.payload ?? '');
      this.soon();
    });
    try {
      await l.query('LISTEN backstop_flush');
    } catch (err) {
      l.release(true);
      throw err;
    }
    this.listener = l;
  }
}
