// Mail addresses as Postfix sees them: local part and domain split at the last '@', domains
// compared in lower case, and the routing forms (%, !, source routes, quoted local parts that
// hide an '@') recognised so that nobody can relay through them.

export interface Address {
  /** The address as given, without angle brackets. Empty string is the null sender. */
  raw: string;
  local: string;
  /** Lower-cased domain, without a trailing dot; empty when the address has none. */
  domain: string;
}

/** Strip the quotes of a quoted local part: "a b"@x → a b. */
function unquoteLocal(local: string): string {
  if (local.length >= 2 && local.startsWith('"') && local.endsWith('"')) {
    return local.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  return local;
}

export function parseAddress(raw: string): Address {
  let a = raw.trim();
  if (a.startsWith('<') && a.endsWith('>')) a = a.slice(1, -1);
  // RFC 5321 source route "@a,@b:user@domain": the real address is after the colon.
  const route = /^@[^:]+:(.*)$/.exec(a);
  const bare = route ? route[1] : a;
  const at = bare.lastIndexOf('@');
  if (at < 0) return { raw: a, local: unquoteLocal(bare), domain: '' };
  const domain = bare.slice(at + 1).toLowerCase().replace(/\.$/, '');
  return { raw: a, local: unquoteLocal(bare.slice(0, at)), domain };
}

/**
 * True when the address carries sender-specified routing: a source route, or a local part that
 * itself contains '@', '%' or '!' (after unquoting). Postfix's resolver flags these as
 * RESOLVE_FLAG_ROUTED; permit_mx_backup and relay checks must not permit them.
 */
export function isRouted(raw: string): boolean {
  let a = raw.trim();
  if (a.startsWith('<') && a.endsWith('>')) a = a.slice(1, -1);
  if (/^@[^:]+:/.test(a)) return true;
  const { local } = parseAddress(a);
  return /[@%!]/.test(local);
}

export function formatAddress(a: Address | string): string {
  return typeof a === 'string' ? a : a.raw;
}
