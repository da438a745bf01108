// Next-hop selection for outbound SMTP, as Postfix's trivial-rewrite + smtp(8) do it:
// transport_maps (search order of transport(5)), then relayhost, then the recipient domain's MX
// records; destinations in Postfix syntax (`domain`, `domain:port`, `[host]`, `[host]:port`,
// several separated by comma or space); MX hosts sorted by preference with equal preferences
// shuffled; A/AAAA per inet_protocols; and the loop rule of smtp_addr.c (truncateSelf).
// Trusts the DnsLookup for answers (it keeps temporary and permanent failures apart) and the
// caller's isSelf() predicate for which addresses are ours. Never talks SMTP.

import { isIP } from 'node:net';
import { domainOf } from '../mail/index.js';
import type { DnsAnswer, DnsLookup } from './dnslookup.js';

/** One destination of a transport/relayhost next hop. */
export interface Destination {
  /** Domain or host name (or IP literal for `[1.2.3.4]`), lower-cased, no brackets. */
  host: string;
  port: number;
  /** True for `domain` / `domain:port`: look up MX records. False for `[host]`. */
  mx: boolean;
}

/** A next hop as transport_maps/relayhost give it: transport name and destinations. */
export interface NextHop {
  transport: string;
  destinations: Destination[];
  /** How the next hop was chosen, for the connection pool key and logs. */
  source: 'transport_maps' | 'relayhost' | 'recipient domain';
  /** The destination text, e.g. "[127.0.0.2]:2525" or "primary.test". Pool key. */
  key: string;
}

/** One address to try: the MX host name, its address, preference and port. */
export interface MxAddress {
  name: string;
  ip: string;
  pref: number;
  port: number;
}

/** A failure to find where to send: its enhanced status code and Postfix's text. */
export interface RouteFailure {
  dsn: string;
  text: string;
}

export type RouteResult = { ok: true; addresses: MxAddress[] } | { ok: false; failure: RouteFailure };

export type TransportLookup = (key: string) => string | undefined | Promise<string | undefined>;

export interface RoutingOptions {
  dns: DnsLookup;
  /** transport_maps as a lookup function over transport(5) keys; undefined = no table. */
  transportMaps?: TransportLookup;
  /** relayhost in Postfix syntax; empty = deliver by MX. */
  relayhost?: string;
  /** Addresses of this host (inet_interfaces and proxy_interfaces). */
  isSelf: (ip: string) => boolean;
  /** inet_protocols: which address families to use (default both, IPv4 first). */
  inetProtocols?: Array<'ipv4' | 'ipv6'>;
  /** smtp_randomize_addresses (default true). */
  randomize?: boolean;
  /** Random source for shuffling (tests); default Math.random. */
  random?: () => number;
  /** Default port for destinations without one (the `smtp` service, 25). */
  defaultPort?: number;
  /** The transport names handled by this client (default smtp, relay). */
  smtpTransports?: string[];
}

const SERVICES: Record<string, number> = { smtp: 25, submission: 587, submissions: 465, smtps: 465, lmtp: 24 };

/** A bad next-hop specification: the caller reports it as a configuration error (4.3.5). */
export class NextHopSyntaxError extends Error {
  constructor(spec: string, why: string) {
    super(`bad next-hop destination "${spec}": ${why}`);
    this.name = 'NextHopSyntaxError';
  }
}

function parsePort(spec: string, port: string): number {
  if (/^\d+$/.test(port)) {
    const n = Number(port);
    if (n >= 1 && n <= 65535) return n;
    throw new NextHopSyntaxError(spec, `port ${port} out of range 1..65535`);
  }
  const s = SERVICES[port.toLowerCase()];
  if (s) return s;
  throw new NextHopSyntaxError(spec, `unknown service "${port}"`);
}

/**
 * Parses one destination: `domain`, `domain:port`, `[host]`, `[host]:port`, `[ipv6:addr]`.
 * A bare IPv6 literal must be bracketed, as in Postfix.
 */
export function parseDestination(spec: string, defaultPort = 25): Destination {
  const s = spec.trim();
  if (!s) throw new NextHopSyntaxError(spec, 'empty destination');
  let host: string;
  let rest: string;
  let mx: boolean;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw new NextHopSyntaxError(spec, 'missing "]"');
    host = s.slice(1, close);
    rest = s.slice(close + 1);
    mx = false;
    if (/^ipv6:/i.test(host)) host = host.slice(5);
  } else {
    const colon = s.indexOf(':');
    host = colon < 0 ? s : s.slice(0, colon);
    rest = colon < 0 ? '' : s.slice(colon);
    mx = true;
  }
  host = host.toLowerCase().replace(/\.$/, '');
  if (!host) throw new NextHopSyntaxError(spec, 'empty host name');
  if (mx && isIP(host) === 0 && !/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(host)) {
    throw new NextHopSyntaxError(spec, `invalid host name "${host}"`);
  }
  if (!mx && isIP(host) === 0 && !/^[a-z0-9_.-]+$/.test(host)) {
    throw new NextHopSyntaxError(spec, `invalid host name "${host}"`);
  }
  // A numeric destination without brackets cannot have MX records: Postfix treats it as a host.
  if (mx && isIP(host) !== 0) mx = false;
  let port = defaultPort;
  if (rest) {
    if (!rest.startsWith(':') || rest.length === 1) throw new NextHopSyntaxError(spec, `unexpected "${rest}"`);
    port = parsePort(spec, rest.slice(1));
  }
  return { host, port, mx };
}

/** Splits a destination list (comma or white space, Postfix 3.5+). */
export function parseDestinations(spec: string, defaultPort = 25): Destination[] {
  return spec.split(/[\s,]+/).filter(Boolean).map((d) => parseDestination(d, defaultPort));
}

/**
 * transport(5) search keys for a recipient, most specific first: user+ext@domain, user@domain,
 * domain, then each parent domain as ".parent", then "*". (transport_maps is not in
 * parent_domain_matches_subdomains by default, so subdomains need the leading-dot form.)
 */
export function transportKeys(recipient: string, recipientDelimiter = '+'): string[] {
  const at = recipient.lastIndexOf('@');
  const local = at < 0 ? recipient : recipient.slice(0, at);
  // A trailing dot (`user@example.com.`, accepted as the same domain) does not change the route.
  const domain = domainOf(recipient);
  const keys: string[] = [];
  const full = `${local}@${domain}`;
  keys.push(full.toLowerCase());
  if (recipientDelimiter) {
    const d = local.indexOf(recipientDelimiter);
    if (d > 0) keys.push(`${local.slice(0, d)}@${domain}`.toLowerCase());
  }
  if (domain) {
    keys.push(domain);
    const labels = domain.split('.');
    for (let i = 1; i < labels.length; i++) keys.push('.' + labels.slice(i).join('.'));
  }
  keys.push('*');
  return keys;
}

/** Parses `transport:nexthop` (either side may be empty), as a transport table result. */
export function parseTransportResult(value: string): { transport: string; nexthop: string } {
  const v = value.trim();
  const colon = v.indexOf(':');
  if (colon < 0) return { transport: v, nexthop: '' };
  return { transport: v.slice(0, colon), nexthop: v.slice(colon + 1) };
}

/**
 * Chooses the next hop for one recipient: transport_maps, then relayhost, then the domain.
 * An `error:` transport result is returned as a permanent failure, `retry:` as a temporary one,
 * other non-SMTP transports as "mail transport unavailable".
 */
export async function chooseNextHop(recipient: string, opts: RoutingOptions): Promise<NextHop | RouteFailure> {
  const port = opts.defaultPort ?? 25;
  const domain = domainOf(recipient);
  const smtpTransports = opts.smtpTransports ?? ['smtp', 'relay'];
  if (opts.transportMaps) {
    for (const key of transportKeys(recipient)) {
      if (key === domain && !domain) continue;
      const found = await opts.transportMaps(key);
      if (found === undefined) continue;
      const { transport, nexthop } = parseTransportResult(found);
      if (transport === 'error') return { dsn: '5.0.0', text: nexthop || 'mail delivery failed' };
      if (transport === 'retry') return { dsn: '4.0.0', text: nexthop || 'mail delivery temporarily unavailable' };
      if (transport && !smtpTransports.includes(transport)) {
        return { dsn: '4.3.0', text: `mail transport unavailable` };
      }
      // An empty next hop keeps the default: relayhost if set, else the recipient domain.
      if (nexthop) {
        return { transport: transport || 'smtp', destinations: parseDestinations(nexthop, port), source: 'transport_maps', key: nexthop };
      }
      break;
    }
  }
  if (opts.relayhost && opts.relayhost.trim()) {
    return { transport: 'smtp', destinations: parseDestinations(opts.relayhost, port), source: 'relayhost', key: opts.relayhost.trim() };
  }
  if (!domain) return { dsn: '5.1.3', text: `bad address syntax` };
  return { transport: 'smtp', destinations: [{ host: domain, port, mx: true }], source: 'recipient domain', key: domain };
}

/**
 * Postfix's smtp_truncate_self(): when one of our own addresses is among the MX hosts, keep only
 * the hosts more preferred than the best-preferred one of ours. Sending to an equal or less
 * preferred MX would hand the mail to a host that sends it back to us (or to the same backup
 * tier) — a mail loop. The list must be sorted by preference. Returns the truncated list and
 * whether we found ourselves.
 */
export function truncateSelf<T extends { ip: string; pref: number }>(
  list: readonly T[],
  isSelf: (ip: string) => boolean,
): { list: T[]; foundSelf: boolean; selfPref?: number } {
  const self = list.find((a) => isSelf(a.ip));
  if (!self) return { list: list.slice(), foundSelf: false };
  return { list: list.filter((a) => a.pref < self.pref), foundSelf: true, selfPref: self.pref };
}

/** Postfix's resolver texts for a failed lookup of `name`/`type`. */
function dnsErrorText(name: string, type: string, answer: DnsAnswer<unknown>): string {
  const base = `Host or domain name not found. Name service error for name=${name} type=${type}: `;
  switch (answer.status) {
    case 'notFound': return base + 'Host not found';
    case 'noData': return base + 'Host found but no data record of requested type';
    case 'tempFail': return base + 'Host not found, try again';
    default: return base + 'Malformed or unexpected name server reply';
  }
}

function shuffle<T>(a: T[], random: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

interface HostLookup {
  addrs: MxAddress[];
  /** Worst failure seen: a temporary one dominates a permanent one, as in smtp_addr_one(). */
  failure?: RouteFailure;
}

/** Addresses of one host name (or the literal itself), per inet_protocols. */
async function hostAddresses(host: string, pref: number, port: number, opts: RoutingOptions, prior?: RouteFailure): Promise<HostLookup> {
  const families = opts.inetProtocols ?? ['ipv4', 'ipv6'];
  const literal = isIP(host);
  if (literal) {
    const fam = literal === 4 ? 'ipv4' : 'ipv6';
    if (families.includes(fam)) return { addrs: [{ name: host, ip: host, pref, port }] };
    return { addrs: [], failure: { dsn: soft(prior) ? '4.4.4' : '5.4.4', text: `${host}: host not found` } };
  }
  const addrs: MxAddress[] = [];
  let failure = prior;
  for (const fam of families) {
    const type = fam === 'ipv4' ? 'A' : 'AAAA';
    const ans = fam === 'ipv4' ? await opts.dns.a(host) : await opts.dns.aaaa(host);
    if (ans.status === 'ok') {
      for (const ip of ans.records) addrs.push({ name: host, ip, pref, port });
    } else if (ans.status === 'tempFail') {
      failure = { dsn: '4.4.3', text: dnsErrorText(host, type, ans) };
    } else if (!soft(failure)) {
      failure = { dsn: '5.4.4', text: dnsErrorText(host, type, ans) };
    }
  }
  return addrs.length ? { addrs } : { addrs, failure };
}

function soft(f: RouteFailure | undefined): boolean {
  return !!f && f.dsn.startsWith('4');
}

function loopsBack(name: string): RouteFailure {
  return { dsn: '5.4.6', text: `mail for ${name} loops back to myself` };
}

/** Postfix's smtp_host_addr(): a host given in brackets (no MX lookup), with the loop check. */
export async function hostAddr(dest: Destination, opts: RoutingOptions): Promise<RouteResult> {
  const { addrs, failure } = await hostAddresses(dest.host, 0, dest.port, opts);
  if (!addrs.length) return { ok: false, failure: failure ?? { dsn: '5.4.4', text: `${dest.host}: host not found` } };
  if (addrs.some((a) => opts.isSelf(a.ip))) return { ok: false, failure: loopsBack(dest.host) };
  const random = opts.random ?? Math.random;
  return { ok: true, addresses: opts.randomize === false ? addrs : shuffle(addrs, random) };
}

/** Postfix's smtp_domain_addr(): MX lookup, sort, resolve, truncate at self, shuffle equal prefs. */
export async function domainAddr(dest: Destination, opts: RoutingOptions): Promise<RouteResult> {
  const ans = await opts.dns.mx(dest.host);
  switch (ans.status) {
    case 'tempFail':
      return { ok: false, failure: { dsn: '4.4.3', text: dnsErrorText(dest.host, 'MX', ans) } };
    case 'nullMx':
      return { ok: false, failure: { dsn: '5.1.0', text: `Domain ${dest.host} does not accept mail (nullMX)` } };
    case 'notFound':
    case 'noData':
      // RFC 5321 5.1: no MX records → the domain itself is the implicit MX.
      return hostAddr({ host: dest.host, port: dest.port, mx: false }, opts);
    case 'ok':
      break;
  }
  const mxs = ans.records
    .map((r, i) => ({ exchange: r.exchange.toLowerCase().replace(/\.$/, ''), pref: r.preference, i }))
    .sort((a, b) => a.pref - b.pref || a.i - b.i);
  const bestPref = mxs.length ? mxs[0].pref : Infinity;
  let list: MxAddress[] = [];
  let failure: RouteFailure | undefined;
  for (const mx of mxs) {
    const r = await hostAddresses(mx.exchange, mx.pref, dest.port, opts, failure);
    list.push(...r.addrs);
    if (r.failure) failure = r.failure;
  }
  if (!list.length) {
    // smtp_defer_if_no_mx_address_found = no: the last lookup error decides (Postfix warns:
    // "no MX host for %s has a valid address record").
    return { ok: false, failure: failure ?? { dsn: '4.4.4', text: `no MX host for ${dest.host} has a valid address record` } };
  }
  const bestFound = list[0].pref;
  const cut = truncateSelf(list, opts.isSelf);
  if (cut.foundSelf) {
    list = cut.list;
    if (!list.length) {
      if (bestPref !== bestFound) return { ok: false, failure: { dsn: '4.4.4', text: `unable to find primary relay for ${dest.host}` } };
      return { ok: false, failure: loopsBack(dest.host) };
    }
  }
  if (list.length > 1 && opts.randomize !== false) {
    // Shuffle, then a stable sort by preference: equal-preference addresses end up in random order.
    list = shuffle(list, opts.random ?? Math.random).sort((a, b) => a.pref - b.pref);
  }
  return { ok: true, addresses: list };
}

/** All addresses for a next hop: each destination in turn (a later one is a fallback). */
export async function resolveNextHop(hop: NextHop, opts: RoutingOptions): Promise<RouteResult> {
  const all: MxAddress[] = [];
  let failure: RouteFailure | undefined;
  for (const dest of hop.destinations) {
    const r = dest.mx ? await domainAddr(dest, opts) : await hostAddr(dest, opts);
    if (r.ok) all.push(...r.addresses);
    else if (!failure || (!soft(failure) && soft(r.failure))) failure = r.failure;
  }
  if (all.length) return { ok: true, addresses: all };
  return { ok: false, failure: failure! };
}
