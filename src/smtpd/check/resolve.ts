// Address resolution as trivial-rewrite(8) does it for the restriction engine: which class a
// recipient falls in (local = mydestination / our interface literals, relay = relay_domains,
// default = somebody else's) and whether it carries sender-specified routing
// (RESOLVE_FLAG_ROUTED). Local domains are stripped and the local part examined again, so
// `a%b@us` (allow_percent_hack), `b!a@us` (swap_bangpath), `"a@b"@us` (resolve_dequoted_address)
// and `@x:a@b` (source routes) all resolve to the inner destination, flagged as routed — the
// open-relay tricks that permit_auth_destination and permit_mx_backup must never permit.
// Trusts the domain predicates it is given; nothing else.

export type AddressClass = 'local' | 'relay' | 'default';

export interface Resolved {
  /** The address after rewriting (no angle brackets). */
  address: string;
  local: string;
  /** Lower case, no trailing dot; '' for an unqualified address. */
  domain: string;
  class: AddressClass;
  routed: boolean;
}

export interface ResolveOptions {
  allowPercentHack: boolean;
  swapBangpath: boolean;
  resolveDequoted: boolean;
  isLocal: (domain: string) => Promise<boolean>;
  isRelay: (domain: string) => Promise<boolean>;
  /**
   * append_at_myorigin: an address without a domain is qualified with this before it is
   * classified, as trivial-rewrite does. Without it `<other.test>` would be "ours" (no domain)
   * and then be delivered to other.test's MX: an open relay.
   */
  myorigin?: string;
}

/** Index of the last '@' outside a quoted string, or -1. */
function lastAt(s: string): number {
  let quoted = false;
  let at = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && quoted) {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (c === '@' && !quoted) at = i;
  }
  return at;
}

function dequote(local: string): string {
  let out = '';
  let quoted = false;
  for (let i = 0; i < local.length; i++) {
    const c = local[i];
    if (c === '\\' && quoted && i + 1 < local.length) {
      out += local[++i];
    } else if (c === '"') {
      quoted = !quoted;
    } else {
      out += c;
    }
  }
  return out;
}

/** One step of local-part routing: a further destination inside a local part, or undefined. */
function innerDestination(local: string, opts: ResolveOptions): string | undefined {
  if (lastAt(local) >= 0) return local;
  if (opts.allowPercentHack && local.includes('%')) {
    const i = local.lastIndexOf('%');
    return `${local.slice(0, i)}@${local.slice(i + 1)}`;
  }
  if (opts.swapBangpath && local.includes('!')) {
    const i = local.indexOf('!');
    return `${local.slice(i + 1)}@${local.slice(0, i)}`;
  }
  return undefined;
}

export async function resolveAddress(raw: string, opts: ResolveOptions): Promise<Resolved> {
  let addr = raw.trim();
  if (addr.startsWith('<') && addr.endsWith('>')) addr = addr.slice(1, -1);
  let routed = false;
  const route = /^@[^:]*:(.*)$/s.exec(addr);
  if (route) {
    routed = true;
    addr = route[1];
  }
  if (opts.myorigin && addr !== '' && lastAt(addr) < 0 && !(opts.swapBangpath && addr.includes('!'))) {
    addr = `${addr}@${opts.myorigin}`;
  }
  for (let hops = 0; hops < 20; hops++) {
    const at = lastAt(addr);
    let local = at >= 0 ? addr.slice(0, at) : addr;
    const domain = at >= 0 ? addr.slice(at + 1).toLowerCase().replace(/\.$/, '') : '';
    if (opts.resolveDequoted) local = dequote(local);
    const local_ = domain === '' || (await opts.isLocal(domain));
    if (local_) {
      const inner = innerDestination(local, opts);
      if (inner !== undefined && inner !== addr) {
        addr = inner;
        routed = true;
        continue;
      }
      return { address: domain ? `${local}@${domain}` : local, local, domain, class: 'local', routed: false };
    }
    const klass: AddressClass = (await opts.isRelay(domain)) ? 'relay' : 'default';
    if (/[@%!]/.test(local)) routed = true;
    return { address: `${local}@${domain}`, local, domain, class: klass, routed };
  }
  // Too many rewrites: treat as somebody else's routed address, never as ours.
  return { address: addr, local: addr, domain: '', class: 'default', routed: true };
}
