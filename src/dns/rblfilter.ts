// DNSBL reply filters: the `=d.d.d.d` part of `reject_rbl_client domain=d.d.d.d`
// (postconf(5)). Since Postfix 2.8 each octet may be a pattern `[a;b..c]`: numbers and
// inclusive ranges separated by ";". Parsed once at configuration load, so a bad filter
// fails there and not mid-session. Pure functions; trust nothing.

/** Per octet, the accepted inclusive ranges. */
export type RblFilter = ReadonlyArray<ReadonlyArray<readonly [number, number]>>;

function octet(text: string, filter: string): number {
  if (!/^\d{1,3}$/.test(text) || Number(text) > 255) {
    throw new Error(`invalid DNSBL reply filter "${filter}": bad octet "${text}"`);
  }
  return Number(text);
}

/** Parse "127.0.0.2" or "127.0.0.[2;4..6]"; throws naming the filter and the bad part. */
export function parseRblFilter(filter: string): RblFilter {
  const parts: string[] = [];
  // Split on dots outside brackets ("[4..6]" holds dots of its own).
  let depth = 0;
  let current = '';
  for (const ch of filter) {
    if (ch === '[') depth++;
    if (ch === ']') depth--;
    if (depth < 0 || depth > 1) throw new Error(`invalid DNSBL reply filter "${filter}": unbalanced "[" "]"`);
    if (ch === '.' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (depth !== 0) throw new Error(`invalid DNSBL reply filter "${filter}": unbalanced "[" "]"`);
  parts.push(current);
  if (parts.length !== 4) throw new Error(`invalid DNSBL reply filter "${filter}": expected d.d.d.d`);
  return parts.map((part) => {
    if (!part.startsWith('[')) {
      const n = octet(part, filter);
      return [[n, n] as const];
    }
    if (!part.endsWith(']')) throw new Error(`invalid DNSBL reply filter "${filter}": bad octet "${part}"`);
    const inner = part.slice(1, -1);
    if (inner === '') throw new Error(`invalid DNSBL reply filter "${filter}": empty "[]"`);
    return inner.split(';').map((item) => {
      const range = item.split('..');
      if (range.length === 1) {
        const n = octet(item, filter);
        return [n, n] as const;
      }
      if (range.length !== 2) throw new Error(`invalid DNSBL reply filter "${filter}": bad range "${item}"`);
      const lo = octet(range[0] as string, filter);
      const hi = octet(range[1] as string, filter);
      if (lo > hi) throw new Error(`invalid DNSBL reply filter "${filter}": bad range "${item}"`);
      return [lo, hi] as const;
    });
  });
}

/** True when the IPv4 address matches the filter. */
export function rblFilterMatches(filter: RblFilter, address: string): boolean {
  const octets = address.split('.').map(Number);
  if (octets.length !== 4) return false;
  return filter.every((ranges, i) => ranges.some(([lo, hi]) => (octets[i] as number) >= lo && (octets[i] as number) <= hi));
}
