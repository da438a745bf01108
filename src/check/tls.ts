// `backstop check` on TLS. The server certificate (smtpd_tls_cert_file): one that expires within
// 14 days, has expired, or does not name myhostname is a warning — senders at `verify` or DANE-TA
// levels, and MTA-STS `enforce` domains pointing at us, would stop delivering; an unreadable or
// unparsable file is an error (smtpd would refuse to start). The client: `dane` without DNSSEC
// lookups is opportunistic TLS only, which the administrator who asked for DANE should hear
// before the first delivery does. Reads files only.

import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { isAbsolute, join } from 'node:path';
import type { Config, Diagnostic } from '../config/index.js';

const WARN_DAYS = 14;

export function lintCertificate(config: Config, mainCfPath: string, now = Date.now()): Diagnostic[] {
  const file = config.str('smtpd_tls_cert_file');
  if (!file) return [];
  const at = config.origin('smtpd_tls_cert_file') ?? { file: mainCfPath, line: 0 };
  const path = isAbsolute(file) ? file : join(config.dir, file);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(path));
  } catch (err) {
    return [{ severity: 'error', ...at, message: `parameter smtpd_tls_cert_file: cannot use ${path}: ${(err as Error).message}` }];
  }
  const out: Diagnostic[] = [];
  const warn = (message: string) => out.push({ severity: 'warning', ...at, message: `parameter smtpd_tls_cert_file: ${message}` });
  const expires = Date.parse(cert.validTo);
  const days = Math.floor((expires - now) / 86_400_000);
  if (expires <= now) warn(`certificate ${path} expired on ${cert.validTo}`);
  else if (days < WARN_DAYS) warn(`certificate ${path} expires in ${days} day${days === 1 ? '' : 's'} (${cert.validTo})`);
  const host = config.str('myhostname');
  if (!cert.checkHost(host)) warn(`certificate ${path} does not name myhostname ${host} (it names ${certNames(cert)})`);
  return out;
}

function certNames(cert: X509Certificate): string {
  const san = (cert.subjectAltName ?? '').split(/,\s*/).filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4));
  if (san.length) return san.join(', ');
  return /CN=([^\n,]+)/.exec(cert.subject)?.[1] ?? 'no host name';
}

/** `dane`/`dane-only` need smtp_dns_support_level = dnssec (Postfix warns at delivery time). */
export function lintOutboundTls(config: Config, mainCfPath: string): Diagnostic[] {
  const level = config.str('smtp_tls_security_level');
  if (!level.startsWith('dane') || config.str('smtp_dns_support_level') === 'dnssec') return [];
  const at = config.origin('smtp_tls_security_level') ?? { file: mainCfPath, line: 0 };
  const effect = level === 'dane' ? 'mail goes out with opportunistic TLS (may) only' : 'every delivery is deferred';
  return [{ severity: 'warning', ...at, message: `smtp_tls_security_level = ${level} needs smtp_dns_support_level = dnssec and a local validating resolver: ${effect}` }];
}
