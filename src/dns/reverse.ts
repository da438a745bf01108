// IP address helpers for reverse (PTR) and DNSBL query names. Pure functions; they trust
// nothing and throw a TypeError naming the bad input.
import net from 'node:net';

/**
 * Parse an IP address; IPv4-mapped IPv6 (::ffff:1.2.3.4) becomes IPv4, as Postfix
 * normalises client addresses. Returns the family and the address bytes.
 */
export function parseIp(ip: string): { family: 4 | 6; bytes: number[] } {
  const text = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  if (net.isIPv4(text)) return { family: 4, bytes: text.split('.').map(Number) };
  if (!net.isIPv6(text) || text.includes('%')) throw new TypeError(`not an IP address: "${ip}"`);
  // Rewrite an embedded dotted quad (::ffff:1.2.3.4) as two hex groups, then expand "::".
  let hex = text;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    hex = text.slice(0, v4.index) + ((a << 8) | b).toString(16) + ':' + ((c << 8) | d).toString(16);
  }
  const halves = hex.split('::');
  const part = (s: string | undefined): number[] => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const left = part(halves[0]);
  const right = part(halves[1]);
  const groups = halves.length === 2 ? [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right] : left;
  const bytes: number[] = [];
  for (const g of groups) bytes.push(g >> 8, g & 0xff);
  if (bytes.length !== 16) throw new TypeError(`not an IP address: "${ip}"`);
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return { family: 4, bytes: bytes.slice(12) };
  return { family: 6, bytes };
}

/** Canonical text of an address: dotted quad, or RFC 5952 IPv6 (for comparisons). */
export function normaliseIp(ip: string): string {
  const { family, bytes } = parseIp(ip);
  if (family === 4) return bytes.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  // Longest run of zero groups (length >= 2) becomes "::".
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return hex.slice(0, best).join(':') + '::' + hex.slice(best + bestLen).join(':');
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
