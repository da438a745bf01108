// The connection cache (Postfix's scache for smtp(8)): after a transaction a session that
// answered RSET is kept per next-hop destination, so the next delivery to the same destination
// skips DNS, connect, greeting, EHLO and STARTTLS. An idle session is closed (QUIT) after
// smtp_connection_cache_time_limit; a session older than smtp_connection_reuse_time_limit is not
// reused. Trusts SmtpSession to report whether it is still alive.
//
// It also keeps the number of connections per destination under a limit when asked to
// (`acquire`): the queue manager may then run more deliveries than connections, and a delivery
// that finds every connection busy waits for one to be handed over — the moment the previous
// message's content is written (Transaction.onSent), so that its MAIL, RCPT and DATA ride behind
// the previous end of data.

import type { SmtpSession } from './client.js';

export interface ConnectionCacheOptions {
  /** smtp_connection_cache_time_limit, seconds (default 2). */
  idleSeconds?: number;
  /** smtp_connection_reuse_time_limit, seconds (default 300). */
  reuseSeconds?: number;
  /** smtp_connection_reuse_count_limit (default 0: no limit). */
  reuseCountLimit?: number;
}

interface Entry {
  session: SmtpSession;
  timer: NodeJS.Timeout;
}

/** What `acquire` gives: a session to use now, or leave to open one more connection (call `done` when it has closed or failed to open). */
export type Acquired = { session: SmtpSession } | { open: true; done: () => void };

interface Waiter {
  resolve: (a: Acquired | null) => void;
  timer: NodeJS.Timeout;
}

export class ConnectionCache {
  private readonly idleMs: number;
  private readonly reuseMs: number;
  private readonly countLimit: number;
  private readonly entries = new Map<string, Entry[]>();
  /** Connections open or opening per destination, counted for `acquire`. */
  private readonly counts = new Map<string, number>();
  /** Deliveries waiting in `acquire`, oldest first. */
  private readonly waiters = new Map<string, Waiter[]>();

  constructor(opts: ConnectionCacheOptions = {}) {
    this.idleMs = (opts.idleSeconds ?? 2) * 1000;
    this.reuseMs = (opts.reuseSeconds ?? 300) * 1000;
    this.countLimit = opts.reuseCountLimit ?? 0;
  }

  /** A live cached session for this destination, removed from the cache; undefined if none. */
  take(key: string): SmtpSession | undefined {
    const list = this.entries.get(key);
    while (list && list.length) {
      const e = list.pop()!;
      clearTimeout(e.timer);
      if (e.session.alive && Date.now() - e.session.createdAt < this.reuseMs) {
        if (!list.length) this.entries.delete(key);
        return e.session;
      }
      void e.session.quit();
    }
    this.entries.delete(key);
    return undefined;
  }

  /**
   * A session for `key`, or leave to open a connection while fewer than `cap` are open or
   * opening; otherwise waits (oldest first) for a session handed over by `put` or for a
   * connection to close, up to `waitMs`. Null when the wait ran out.
   */
  async acquire(key: string, cap: number, waitMs: number): Promise<Acquired | null> {
    const session = this.take(key);
    if (session) return { session };
    if ((this.counts.get(key) ?? 0) < cap) return this.opening(key);
    return new Promise((resolve) => {
      const list = this.waiters.get(key) ?? [];
      const w: Waiter = {
        resolve,
        timer: setTimeout(() => {
          const l = this.waiters.get(key) ?? [];
          const i = l.indexOf(w);
          if (i >= 0) l.splice(i, 1);
          if (!l.length) this.waiters.delete(key);
          resolve(null);
        }, waitMs),
      };
      list.push(w);
      this.waiters.set(key, list);
    });
  }

  private opening(key: string): Acquired {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    let once = false;
    return {
      open: true,
      done: () => {
        if (once) return;
        once = true;
        const n = (this.counts.get(key) ?? 1) - 1;
        if (n > 0) this.counts.set(key, n);
        else this.counts.delete(key);
        // A connection fewer: the oldest waiter may open one.
        const w = this.nextWaiter(key);
        if (w) w.resolve(this.opening(key));
      },
    };
  }

  private nextWaiter(key: string): Waiter | undefined {
    const list = this.waiters.get(key);
    const w = list?.shift();
    if (list && !list.length) this.waiters.delete(key);
    if (w) clearTimeout(w.timer);
    return w;
  }

  /** Whether a session may be used again (alive, within the reuse time and count limits). */
  private reusable(session: SmtpSession): boolean {
    return session.alive && Date.now() - session.createdAt < this.reuseMs && !(this.countLimit > 0 && session.uses >= this.countLimit);
  }

  /**
   * Keeps a session that completed (or has pipelined) RSET: hands it to the oldest delivery
   * waiting in `acquire`, or caches it; closes it instead when it may not be reused.
   */
  put(key: string, session: SmtpSession): void {
    if (!this.reusable(session)) {
      void session.quit();
      return;
    }
    const w = this.nextWaiter(key);
    if (w) {
      w.resolve({ session });
      return;
    }
    const list = this.entries.get(key) ?? [];
    const entry: Entry = {
      session,
      timer: setTimeout(() => {
        const l = this.entries.get(key);
        const i = l ? l.indexOf(entry) : -1;
        if (l && i >= 0) {
          l.splice(i, 1);
          if (!l.length) this.entries.delete(key);
        }
        void session.quit();
      }, this.idleMs),
    };
    entry.timer.unref();
    list.push(entry);
    this.entries.set(key, list);
  }

  /** Whether a delivery waits in `acquire` for a session to this destination. */
  waiting(key: string): boolean {
    return (this.waiters.get(key)?.length ?? 0) > 0;
  }

  /** Whether a session for this destination is cached (it may have died since). */
  has(key: string): boolean {
    return (this.entries.get(key)?.length ?? 0) > 0;
  }

  /** Number of cached sessions (all destinations). */
  get size(): number {
    let n = 0;
    for (const l of this.entries.values()) n += l.length;
    return n;
  }

  /** QUIT every cached session. */
  async closeAll(): Promise<void> {
    const all: Promise<void>[] = [];
    for (const list of this.entries.values()) {
      for (const e of list) {
        clearTimeout(e.timer);
        all.push(e.session.quit());
      }
    }
    this.entries.clear();
    await Promise.all(all);
  }
}
