// The outbound TLS policy of one next-hop destination, as Postfix's smtp_tls_policy.c computes it:
// smtp_tls_security_level, overridden by an smtp_tls_policy_maps entry found under the full
// next-hop destination ("[host]:port" and "host:port" are looked up verbatim; a domain is looked
// up, then its parent domains as ".parent", until an entry is found); the entry's syntax is
// Postfix's (`secure match=a:b protocols=!SSLv2`, `dane`, `none`, …). A broken entry makes the
// level invalid: delivery defers with "client TLS configuration problem" rather than guess
// (Postfix: "errors in attributes may have security consequences, don't ignore them").
// Also Postfix's protocol lists (smtp_tls_protocols) and certificate name matching. Trusts the
// table it is given; never talks to the network.

import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { protocolRange } from '../mail/index.js';

export { protocolRange };

/** Postfix's levels in their order of strength (tls_level.c), minus `fingerprint`. */
export const TLS_LEVELS = ['none', 'may', 'encrypt', 'dane', 'dane-only', 'verify', 'secure'] as const;
export type PolicyLevel = (typeof TLS_LEVELS)[number];

/** What a destination's policy asks for. */
export interface TlsPolicy {
  level: PolicyLevel;
  /** match= patterns (verify/secure), e.g. ["hostname"] or ["nexthop", "dot-nexthop"]. */
  match?: string[];
  /** protocols= (else smtp_tls_protocols / smtp_tls_mandatory_protocols). */
  protocols?: string;
  /** Where it came from, for log lines: "smtp_tls_security_level" or the table. */
  source: string;
}

/** A policy that cannot be used: the delivery defers with `text`. */
export interface InvalidPolicy {
  invalid: true;
  dsn: string;
  text: string;
}

export type TlsPolicyLookup = (key: string) => string | undefined | Promise<string | undefined>;

export interface TlsPolicyOptions {
  /** smtp_tls_security_level ('' = none, as Postfix). */
  level: string;
  /** smtp_tls_policy_maps as a lookup function; undefined = no table. */
  maps?: TlsPolicyLookup;
  /** Name of the table for warnings (e.g. "texthash:/etc/backstop/tls_policy"). */
  mapsTitle?: string;
  warn?: (text: string) => void;
}

const CONFIG_PROBLEM: InvalidPolicy = { invalid: true, dsn: '4.7.5', text: 'client TLS configuration problem' };

function isLevel(s: string): s is PolicyLevel {
  return (TLS_LEVELS as readonly string[]).includes(s);
}

/** True for a name that may be a parent-domain search key (not "[host]" or "host:port"). */
function isHostname(s: string): boolean {
  return /^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/i.test(s);
}

/**
 * Parses one smtp_tls_policy_maps value (Postfix's tls_policy_lookup_one): a level, then
 * name=value attributes. Unknown attributes and misplaced ones make the policy invalid.
 */
export function parsePolicyEntry(value: string, where: string, warn: (t: string) => void): TlsPolicy | InvalidPolicy {
  const words = value.split(/[\s,]+/).filter(Boolean);
  if (!words.length) {
    warn(`${where}: invalid empty policy`);
    return CONFIG_PROBLEM;
  }
  const level = words[0].toLowerCase();
  if (!isLevel(level)) {
    warn(`${where}: invalid security level "${words[0]}"`);
    return CONFIG_PROBLEM;
  }
  const policy: TlsPolicy = { level, source: where };
  if (level === 'none') {
    for (const w of words.slice(1)) warn(`${where}: ignoring attribute "${w}" with TLS disabled`);
    return policy;
  }
  for (const w of words.slice(1)) {
    const eq = w.indexOf('=');
    if (eq <= 0) {
      warn(`${where}: malformed attribute/value pair "${w}": missing '='`);
      return CONFIG_PROBLEM;
    }
    const name = w.slice(0, eq).toLowerCase();
    const val = w.slice(eq + 1);
    if (name === 'match') {
      if (!val) {
        warn(`${where}: attribute "${name}" has empty value`);
        return CONFIG_PROBLEM;
      }
      if (level !== 'verify' && level !== 'secure') {
        warn(`${where}: attribute "${name}" invalid at security level "${level}"`);
        return CONFIG_PROBLEM;
      }
      policy.match = [...(policy.match ?? []), ...val.split(':').filter(Boolean)];
    } else if (name === 'protocols') {
      if (policy.protocols !== undefined) {
        warn(`${where}: attribute "${name}" is specified multiple times`);
        return CONFIG_PROBLEM;
      }
      try {
        protocolRange(val);
      } catch (err) {
        warn(`${where}: ${(err as Error).message}`);
        return CONFIG_PROBLEM;
      }
      policy.protocols = val;
    } else if (name === 'ciphers' || name === 'exclude' || name === 'connection_reuse') {
      // Accepted for compatibility; Node's defaults decide ciphers (docs/delivery.md).
    } else {
      warn(`${where}: invalid attribute name: "${name}"`);
      return CONFIG_PROBLEM;
    }
  }
  return policy;
}

/**
 * The policy for next-hop destination `dest` (Postfix's tls_policy_lookup): the table entry for
 * the destination or, for a domain, its nearest ".parent" entry; else the global level.
 */
export async function lookupTlsPolicy(dest: string, opts: TlsPolicyOptions): Promise<TlsPolicy | InvalidPolicy> {
  const warn = opts.warn ?? (() => undefined);
  const globalLevel = opts.level === '' ? 'none' : opts.level.toLowerCase();
  if (!isLevel(globalLevel)) {
    warn(`invalid smtp_tls_security_level value "${opts.level}"`);
    return CONFIG_PROBLEM;
  }
  if (opts.maps) {
    const title = opts.mapsTitle ?? 'smtp_tls_policy_maps';
    const keys: string[] = [dest];
    if (isHostname(dest)) {
      for (let i = dest.indexOf('.', 1); i >= 0; i = dest.indexOf('.', i + 1)) keys.push(dest.slice(i));
    }
    for (const key of keys) {
      let found: string | undefined;
      try {
        found = await opts.maps(key);
      } catch (err) {
        warn(`${title}, next-hop destination "${dest}": policy table lookup error: ${(err as Error).message}`);
        return { invalid: true, dsn: '4.3.0', text: 'Temporary lookup error' };
      }
      if (found !== undefined) return parsePolicyEntry(found, `${title}, next-hop destination "${dest}"`, warn);
    }
  }
  return { level: globalLevel, source: 'smtp_tls_security_level' };
}

/** The DNS names a certificate is for: its subjectAltName DNS entries, else its CN. */
export function certNames(cert: PeerCertificate): string[] {
  const san = (cert.subjectaltname ?? '').split(/,\s*/).filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4).toLowerCase());
  if (san.length) return san;
  const cn = cert.subject?.CN;
  return cn ? [String(cn).toLowerCase()] : [];
}

/**
 * Postfix's certificate name matching (smtp_tls_verify_cert_match, _secure_cert_match, match=):
 * `hostname` is the server's (MX) name, `nexthop` the next-hop domain, `dot-nexthop` any name
 * below it; ".domain" any name below that domain; anything else a literal name. Wildcards in the
 * certificate follow RFC 6125 (Node's checkServerIdentity).
 */
export function certMatches(cert: PeerCertificate, patterns: readonly string[], ctx: { hostname: string; nexthop: string }): string | undefined {
  const names = certNames(cert);
  for (const raw of patterns) {
    const p = raw.toLowerCase();
    const sub = p === 'dot-nexthop' ? `.${ctx.nexthop.toLowerCase()}` : p.startsWith('.') ? p : undefined;
    if (sub) {
      const hit = names.find((n) => n.endsWith(sub) && n.length > sub.length);
      if (hit) return hit;
      continue;
    }
    const want = p === 'hostname' ? ctx.hostname : p === 'nexthop' ? ctx.nexthop : p;
    if (!checkServerIdentity(want.toLowerCase(), cert)) return want;
  }
  return undefined;
}
