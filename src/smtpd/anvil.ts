// Per-client connection accounting, as Postfix's anvil(8) does for smtpd: concurrent connections
// and connection rate per client address, with the smtpd_client_event_limit_exceptions networks
// exempt. In-process (one smtpd), shared by every listener. Trusts its callers to release each
// connection exactly once.

import ipaddr from 'ipaddr.js';

type Net = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parsed network lists, once per list (the lists come from the settings and live as long). */
const parsedLists = new WeakMap<readonly string[], Net[]>();

function parseNetworks(networks: readonly string[]): Net[] {
  let nets = parsedLists.get(networks);
  if (nets) return nets;
  nets = [];
  for (const entry of networks) {
    const e = entry.replace(/^\[([^\]]+)\]/, '$1');
    try {
      if (e.includes('/')) {
        const [net, bits] = ipaddr.parseCIDR(e);
        const mapped = net.kind() === 'ipv6' && (net as ipaddr.IPv6).isIPv4MappedAddress();
        nets.push(mapped ? [(net as ipaddr.IPv6).toIPv4Address(), bits - 96] : [net, bits]);
      } else if (ipaddr.isValid(e)) {
        const a = ipaddr.process(e);
        nets.push([a, a.kind() === 'ipv4' ? 32 : 128]);
      }
      // Host names and table references (cidr:/path) are not evaluated here.
    } catch {
      // a malformed entry never matches
    }
  }
  parsedLists.set(networks, nets);
  return nets;
}

/** True when `ip` lies in one of the CIDR/address entries (`[::1]/128`, `127.0.0.0/8`, `10.1.2.3`). */
export function inNetworks(ip: string, networks: readonly string[]): boolean {
  if (networks.length === 0) return false;
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.process(ip);
  } catch {
    return false;
  }
  for (const [net, bits] of parseNetworks(networks)) {
    if (net.kind() === addr.kind() && addr.match(net, bits)) return true;
  }
  return false;
}

export type AnvilVerdict = { ok: true; count: number; rate: number } | { ok: false; reason: 'count' | 'rate'; count: number; rate: number };

export class Anvil {
  private readonly counts = new Map<string, number>();
  private readonly rates = new Map<string, { start: number; n: number }>();

  /** Register a new connection from `ip`; refuses it when a limit is exceeded (0 = no limit). */
  connect(ip: string, limits: { count: number; rate: number; unitSeconds: number; exempt: boolean }, now = Date.now()): AnvilVerdict {
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
