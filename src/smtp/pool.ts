// The connection cache (Postfix's scache for smtp(8)): after a transaction a session that
// answered RSET is kept per next-hop destination, so the next delivery to the same destination
// skips DNS, connect, greeting, EHLO and STARTTLS. An idle session is closed (QUIT) after
// smtp_connection_cache_time_limit; a session older than smtp_connection_reuse_time_limit is not
// reused. Trusts SmtpSession to report whether it is still alive.

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

export class ConnectionCache {
  private readonly idleMs: number;
  private readonly reuseMs: number;
  private readonly countLimit: number;
  private readonly entries = new Map<string, Entry[]>();

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

  /** Keeps a session that just completed RSET; closes it instead when it may not be reused. */
  put(key: string, session: SmtpSession): void {
    if (!session.alive || Date.now() - session.createdAt >= this.reuseMs || (this.countLimit > 0 && session.uses >= this.countLimit)) {
      void session.quit();
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
