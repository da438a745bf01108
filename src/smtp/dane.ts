// Opportunistic DANE for SMTP (RFC 7672), as Postfix's smtp_tls_policy.c (dane_init) and
// tls_dane.c do it. Before connecting: the MX RRset, the server's address records and its TLSA
// RRset (_port._tcp.host) count only when the resolver validated them (AD bit, see
// src/dns/dnssec.ts). Usable TLSA records → the server must present a certificate they match,
// else the delivery defers; no (secure) TLSA records or an insecure zone → plain `may`
// (`dane-only`: defer); TLSA records that are all unusable → `encrypt`; a failed lookup (a
// validating resolver answers SERVFAIL for bogus data) → defer. After the handshake: the
// certificate chain against the records — DANE-EE(3) matches the server's own certificate or key
// with no name or date check; DANE-TA(2) matches an issuer in the presented chain, which must
// have signed down to the server's certificate, whose name must be the TLSA base domain or the
// next-hop domain. PKIX-TA(0)/PKIX-EE(1) are unusable for SMTP (RFC 7672 section 3.1.3).
// Trusts the configured resolver's AD bit; nothing the peer says.

import { createHash, X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { SecureDns, TlsaRecord } from '../dns/index.js';
import { certMatches } from './tls-policy.js';

/** What DANE decided for one server before connecting. */
export type DaneDecision =
  /** Usable TLSA records: authenticate with them. */
  | { kind: 'dane'; tlsa: TlsaRecord[]; base: string }
  /** DANE does not apply: carry on at this level (`why` is Postfix's reason, logged). */
  | { kind: 'fallback'; level: 'may' | 'encrypt'; why: string }
  /** Defer the delivery to this server. */
  | { kind: 'defer'; dsn: string; text: string };

export interface DaneTarget {
  /** "dane" or "dane-only". */
  level: 'dane' | 'dane-only';
  /** The server's host name (MX exchange, or the host of "[host]:port"). */
  host: string;
  port: number;
  /** The recipient domain when the server was found by MX lookup. */
  mxDomain?: string;
}

function incompat(t: DaneTarget, cantAuth: boolean, why: string): DaneDecision {
  if (t.level === 'dane') return { kind: 'fallback', level: cantAuth ? 'encrypt' : 'may', why };
  return { kind: 'defer', dsn: '4.7.5', text: why };
}

/** A record we can use for SMTP: DANE-TA or DANE-EE, known selector and matching type. */
export function usable(r: TlsaRecord): boolean {
  if (r.usage !== 2 && r.usage !== 3) return false;
  if (r.selector !== 0 && r.selector !== 1) return false;
  if (r.matchingType === 1) return r.data.length === 32;
  if (r.matchingType === 2) return r.data.length === 64;
  return r.matchingType === 0 && r.data.length > 0;
}

/** Postfix's dane_init + tls_dane_resolve for one server. */
export async function daneInit(t: DaneTarget, dns: SecureDns): Promise<DaneDecision> {
  const where = `${t.host}:${t.port}`;
  if (/^[\d.]+$|:/.test(t.host)) return incompat(t, false, 'non DNSSEC destination');
  if (t.mxDomain) {
    const mx = await dns.query(t.mxDomain, 'MX');
    if (mx.status === 'tempFail') return { kind: 'defer', dsn: '4.7.5', text: `TLSA lookup error for ${where}` };
    if (!mx.secure) return incompat(t, false, 'non DNSSEC destination');
  }
  // The server's address records must be validated too, else its TLSA RRset is not looked up.
  const addr = await dns.query(t.host, 'A');
  if (addr.status === 'tempFail') return { kind: 'defer', dsn: '4.7.5', text: `TLSA lookup error for ${where}` };
  if (!addr.secure) return incompat(t, false, 'no TLSA records found');
  const r = await dns.tlsa(t.host, t.port);
  if (r.status === 'tempFail') return { kind: 'defer', dsn: '4.7.5', text: `TLSA lookup error for ${where}` };
  if (r.status !== 'ok' || !r.secure) return incompat(t, false, 'no TLSA records found');
  const good = r.records.filter(usable);
  if (!good.length) return incompat(t, true, 'TLSA records unusable');
  return { kind: 'dane', tlsa: good, base: t.host };
}

function digest(r: TlsaRecord, cert: X509Certificate): boolean {
  const data = r.selector === 0 ? cert.raw : (cert.publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
  const value = r.matchingType === 0 ? data : createHash(r.matchingType === 1 ? 'sha256' : 'sha512').update(data).digest();
  return value.equals(r.data);
}

/** The chain as the server presented it, its own certificate first. */
export function presentedChain(peer: PeerCertificate & { issuerCertificate?: PeerCertificate }): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: (PeerCertificate & { issuerCertificate?: PeerCertificate }) | undefined = peer;
  for (let i = 0; c && c.raw && i < 10; i++) {
    const fp = c.fingerprint256;
    if (seen.has(fp)) break; // a self-signed root points at itself
    seen.add(fp);
    out.push(new X509Certificate(c.raw));
    c = c.issuerCertificate as typeof c;
  }
  return out;
}

/**
 * Does the presented chain satisfy the TLSA records? Undefined when it does; otherwise why not,
 * in words for the log.
 */
export function daneVerify(peer: PeerCertificate, tlsa: readonly TlsaRecord[], names: { base: string; nexthop: string }): string | undefined {
  const chain = presentedChain(peer);
  if (!chain.length) return 'no certificate presented';
  const leaf = chain[0];
  if (tlsa.some((r) => r.usage === 3 && digest(r, leaf))) return undefined;
  const ta = tlsa.filter((r) => r.usage === 2);
  if (!ta.length) return 'the server certificate matches no DANE-EE TLSA record';
  // DANE-TA: find the issuer that a record matches, checking each signature on the way down.
  for (let i = 1; i < chain.length; i++) {
    const child = chain[i - 1];
    const parent = chain[i];
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) return 'the presented chain is broken';
    if (ta.some((r) => digest(r, parent))) {
      const now = Date.now();
      if (now < Date.parse(leaf.validFrom) || now > Date.parse(leaf.validTo)) return 'the server certificate is expired or not yet valid';
      if (!certMatches(peer, [names.base, names.nexthop], { hostname: names.base, nexthop: names.nexthop })) {
        return `the server certificate does not name ${names.base}`;
      }
      return undefined;
    }
  }
  return 'no certificate in the presented chain matches a TLSA record';
}
