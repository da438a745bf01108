// IP address helpers for reverse (PTR) and DNSBL query names, on the shared IP parser
// (mail/ip.ts, ipaddr.js): IPv4-mapped IPv6 (::ffff:1.2.3.4) counts as IPv4, as Postfix
// normalises client addresses. Pure functions; they trust nothing and throw a TypeError naming
// the bad input.
import type { IPv6 } from 'ipaddr.js';
import { parseIp as parseAddress } from '../mail/index.js';

/** The family and the address bytes of an IP address (brackets allowed). */
export function parseIp(ip: string): { family: 4 | 6; bytes: number[] } {
  const a = ip.includes('%') ? undefined : parseAddress(ip);
  if (!a) throw new TypeError(`not an IP address: "${ip}"`);
  return { family: a.kind() === 'ipv4' ? 4 : 6, bytes: a.toByteArray() };
}

/** Canonical text of an address: dotted quad, or RFC 5952 IPv6 (for comparisons). */
export function normaliseIp(ip: string): string {
  parseIp(ip);
  const a = parseAddress(ip)!;
  return a.kind() === 'ipv4' ? a.toString() : (a as IPv6).toRFC5952String();
}

/**
 * Reverse an IP for DNSBL queries and PTR names: 1.2.3.4 → "4.3.2.1"; IPv6 → its 32
 * nibbles in reverse order, dot-separated ("b.a.9.8.7.6.5.0.4.0...").
 */
export function reverseIp(ip: string): string {
  const { family, bytes } = parseIp(ip);
  if (family === 4) return [...bytes].reverse().join('.');
  const nibbles: string[] = [];
  for (const b of bytes) nibbles.push((b >> 4).toString(16), (b & 0xf).toString(16));
  return nibbles.reverse().join('.');
}

/** The PTR query name: "4.3.2.1.in-addr.arpa" or "<nibbles>.ip6.arpa". */
export function ptrName(ip: string): string {
  return reverseIp(ip) + (parseIp(ip).family === 4 ? '.in-addr.arpa' : '.ip6.arpa');
}
