// Which TLS a session to one server must have, decided before connecting, and the session opened
// with it — Postfix's policy_create() + smtp_connect's plain-text retry. The order: the next-hop
// destination's smtp_tls_policy_maps entry, else smtp_tls_security_level; then MTA-STS (RFC 8461)
// for a recipient domain without a policy-table entry; then DANE for the dane levels (dane.ts),
// which may lower `dane` to `may`/`encrypt` or defer. A policy that cannot be met defers (4.7.x)
// before a byte is sent; at `may`, a failed TLS handshake is retried once in plain text on a new
// connection to the same server when Postfix would (the message has waited at least
// minimal_backoff_time, or the session is an address probe).
// Trusts the policy table, the validating resolver's AD bit and the MTA-STS policy host's PKIX
// certificate.

import type { SecureDns } from '../dns/index.js';
import type { Logger } from '../log/index.js';
import { SmtpSession } from './client.js';
import { SessionError } from './conn.js';
import { daneInit } from './dane.js';
import type { MxAddress, NextHop } from './nexthop.js';
import type { SessionOptions, SessionTls } from './options.js';
import { TlsHandshakeError } from './starttls.js';
import { lookupTlsPolicy, type TlsPolicyLookup } from './tls-policy.js';

/** What an MTA-STS policy source answers for a recipient domain (mta-sts.ts). */
export interface StsVerdict {
  mode: 'enforce' | 'testing' | 'none';
  /** Does the MX host name match the policy's mx patterns? */
  mxMatches: (host: string) => boolean;
}

/** The consumer's view of the MTA-STS cache (mta-sts.ts implements it). */
export interface StsSource {
  policy(domain: string): Promise<StsVerdict | undefined>;
}

/** The outbound TLS configuration (wiring.ts builds it from main.cf). */
export interface OutboundTls {
  /** smtp_tls_security_level. */
  level: string;
  policyMaps?: TlsPolicyLookup;
  policyMapsTitle?: string;
  /** smtp_tls_protocols (may) and smtp_tls_mandatory_protocols (every stronger level). */
  protocols: string;
  mandatoryProtocols: string;
  /** smtp_tls_verify_cert_match and smtp_tls_secure_cert_match, split. */
  verifyMatch: string[];
  secureMatch: string[];
  /** smtp_dns_support_level = dnssec: DNSSEC lookups enabled (required for dane). */
  dnssec: boolean;
  secureDns?: SecureDns;
  /** backstop_smtp_mta_sts: the policy cache, or undefined when off. */
  mtaSts?: StsSource;
}

/** The TLS to use with `a`, or a failure to report for it (thrown as a SessionError 'policy'). */
export async function resolveSessionTls(hop: NextHop, a: MxAddress, cfg: OutboundTls, log: Logger): Promise<SessionTls> {
  const dest = hop.key;
  const nexthop = hop.destinations[0]?.host ?? a.name;
  const policy = await lookupTlsPolicy(dest, { level: cfg.level, maps: cfg.policyMaps, mapsTitle: cfg.policyMapsTitle, warn: (t) => log.warning(t) });
  if ('invalid' in policy) throw new SessionError('policy', policy.dsn, policy.text);
  let level = policy.level;
  let match = policy.match;
  let because: string | undefined;

  if (level === 'dane' || level === 'dane-only') {
    if (!cfg.dnssec || !cfg.secureDns) {
      // Postfix: "dane configured with dnssec lookups disabled" — a configuration fault: warn.
      log.warning(`${dest}: ${level} configured with dnssec lookups disabled`);
      if (level === 'dane-only') throw new SessionError('policy', '4.7.5', 'client TLS configuration problem');
      level = 'may';
    } else {
      const first = hop.destinations[0];
      const d = await daneInit({ level, host: a.name, port: a.port, mxDomain: first?.mx ? first.host : undefined }, cfg.secureDns);
      if (d.kind === 'defer') throw new SessionError('policy', d.dsn, d.text);
      if (d.kind === 'dane') {
        return { level: 'dane', match: [], nexthop, protocols: policy.protocols ?? cfg.mandatoryProtocols, tlsa: d.tlsa, daneBase: d.base };
      }
      log.info(`${a.name}[${a.ip}]:${a.port}: ${d.why}, resorting to "${d.level}"`);
      level = d.level;
    }
  }

  // MTA-STS applies to a domain's MX hosts when no policy-table entry names the destination.
  if (cfg.mtaSts && policy.source === 'smtp_tls_security_level' && hop.destinations[0]?.mx) {
    const sts = await cfg.mtaSts.policy(nexthop);
    if (sts && sts.mode !== 'none') {
      if (!sts.mxMatches(a.name)) {
        if (sts.mode === 'enforce') {
          throw new SessionError('policy', '4.7.5', `MX host ${a.name} does not match the MTA-STS policy of ${nexthop}`);
        }
        log.info(`MTA-STS policy of ${nexthop} (testing): MX host ${a.name} does not match`);
      } else if (sts.mode === 'enforce' && TLS_RANK[level] < TLS_RANK.secure) {
        level = 'secure';
        match = ['hostname'];
        because = `MTA-STS policy of ${nexthop}`;
      }
    }
  }

  return {
    level,
    match: match ?? (level === 'verify' ? cfg.verifyMatch : cfg.secureMatch),
    nexthop,
    protocols: policy.protocols ?? (level === 'may' ? cfg.protocols : cfg.mandatoryProtocols),
    because,
  };
}

const TLS_RANK: Record<string, number> = { none: 0, may: 1, encrypt: 2, dane: 3, 'dane-only': 4, verify: 5, secure: 6 };

/**
 * Opens a session to `a` with the TLS its policy asks for. `plainRetryOk`: the message has waited
 * long enough (or this is a probe) that a failed handshake at `may` is retried in plain text.
 */
export async function openSecured(hop: NextHop, a: MxAddress, session: SessionOptions, cfg: OutboundTls | undefined, log: Logger, plainRetryOk: boolean): Promise<SmtpSession> {
  if (!cfg) return SmtpSession.open(a, session);
  const tls = await resolveSessionTls(hop, a, cfg, log);
  try {
    return await SmtpSession.open(a, { ...session, tls: { ...tls, plaintextFallback: plainRetryOk } });
  } catch (err) {
    if (!(err instanceof TlsHandshakeError) || !err.retryPlain) throw err;
    // Postfix's RETRY_AS_PLAINTEXT: a new connection to the same server, TLS disabled.
    return SmtpSession.open(a, { ...session, tls: { ...tls, level: 'none' } });
  }
}
