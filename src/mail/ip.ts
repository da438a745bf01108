// IP address forms, written once on top of ipaddr.js: every module that compares a client
// address (mynetworks, connection limits, cidr: tables, FCrDNS, loop detection) sees the same
// form — brackets stripped, IPv4-mapped IPv6 (::ffff:192.0.2.1) as the IPv4 address, as Postfix
// does for its client address. Dotted quads must be complete (no "10.1" shorthand).

import ipaddr from 'ipaddr.js';

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * Parsed addresses by text: every SMTP session and delivery asks about the same few (the client,
 * our own, the primary's), and ipaddr.js's validation runs a long regular expression each time.
 * At most PARSED_KEPT, then forgotten all at once. Callers must not modify what they get.
 */
const parsed = new Map<string, IpAddress | null>();
const PARSED_KEPT = 4096;

/** The parsed address, IPv4-mapped IPv6 unwrapped; undefined when `text` is not an address. */
export function parseIp(text: string): IpAddress | undefined {
  const known = parsed.get(text);
  if (known !== undefined) return known ?? undefined;
  const p = parseUncached(text);
  if (parsed.size >= PARSED_KEPT) parsed.clear();
  parsed.set(text, p ?? null);
  return p;
}

function parseUncached(text: string): IpAddress | undefined {
  const t = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (!ipaddr.isValid(t)) return undefined;
  try {
    const p = ipaddr.parse(t);
    if (p.kind() === 'ipv6' && (p as ipaddr.IPv6).isIPv4MappedAddress()) return (p as ipaddr.IPv6).toIPv4Address();
    if (p.kind() === 'ipv4' && !/^\d+\.\d+\.\d+\.\d+$/.test(t)) return undefined;
    return p;
  } catch {
    return undefined;
  }
}

/** Canonical forms by text, kept like `parsed` (the loop check asks for each MX address per delivery). */
const normal = new Map<string, string>();

/** Canonical text (`::ffff:10.0.0.1` → `10.0.0.1`, IPv6 compressed); the input when not an IP. */
export function normalizeIp(text: string): string {
  const known = normal.get(text);
  if (known !== undefined) return known;
  const n = parseIp(text)?.toString() ?? text;
  if (normal.size >= PARSED_KEPT) normal.clear();
  normal.set(text, n);
  return n;
}
