// Per-client connection accounting, as Postfix's anvil(8) does for smtpd: concurrent connections
// and connection rate per client address, shared by every listener of a process — and, with
// several smtpd workers, run once in the master for all of them. Trusts its callers to release
// each connection exactly once, and to say whether the client is exempt
// (smtpd_client_event_limit_exceptions, matched by the connection with smtpd's MatchList).

import type { AnvilVerdict, ConnectionCounter, ConnectionLimits } from './types.js';

export class Anvil implements ConnectionCounter {
  private readonly counts = new Map<string, number>();
  private readonly rates = new Map<string, { start: number; n: number }>();

  /** Register a new connection from `ip`; refuses it when a limit is exceeded (0 = no limit). */
  connect(ip: string, limits: ConnectionLimits, now = Date.now()): AnvilVerdict {
    const count = (this.counts.get(ip) ?? 0) + 1;
    let r = this.rates.get(ip);
    if (!r || now - r.start >= limits.unitSeconds * 1000) {
      r = { start: now, n: 0 };
      this.rates.set(ip, r);
    }
    r.n++;
    this.counts.set(ip, count);
    if (!limits.exempt) {
      if (limits.count > 0 && count > limits.count) return { ok: false, reason: 'count', count, rate: r.n };
      if (limits.rate > 0 && r.n > limits.rate) return { ok: false, reason: 'rate', count, rate: r.n };
    }
    return { ok: true, count, rate: r.n };
  }

  disconnect(ip: string): void {
    const n = (this.counts.get(ip) ?? 1) - 1;
    if (n <= 0) this.counts.delete(ip);
    else this.counts.set(ip, n);
  }

  /** Drop rate windows that have expired (called now and then so the map stays small). */
  prune(unitSeconds: number, now = Date.now()): void {
    for (const [ip, r] of this.rates) if (now - r.start >= unitSeconds * 1000) this.rates.delete(ip);
  }
}
