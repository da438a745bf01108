// Turns the configuration into the plain options objects the services take: the DNS resolver,
// this host's addresses (inet_interfaces/proxy_interfaces, for the loop rule and permit_mx_backup),
// the delivery client's routing and session options. One place, so every service reads a
// parameter the same way.

import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { Config } from '../config/index.js';
import { Resolver } from '../dns/index.js';
import { TableList } from '../tables/index.js';
import { SecureDns } from '../dns/index.js';
import { ConnectionCache, MtaStsCache, smtpTimeoutsFrom, type DeliveryOptions, type OutboundTls, type TlsLevel } from '../smtp/index.js';
import { maillog } from '../log/index.js';
import { normalizeIp, parseIp } from '../mail/index.js';

export function resolverFromConfig(config: Config): Resolver {
  return new Resolver({ servers: config.list('backstop_dns_servers'), timeoutMs: config.time('backstop_dns_timeout') * 1000 });
}

function interfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.push(normalizeIp(a.address.split('%')[0]));
  return out;
}

/**
 * The addresses this host receives mail on: inet_interfaces (`all` = every interface address,
 * `loopback-only` = 127.0.0.1 and ::1) plus proxy_interfaces. Names are not resolved here:
 * Postfix resolves them once at start-up; Backstop asks for literal addresses (documented).
 */
export function myAddresses(config: Config): string[] {
  const out = new Set<string>();
  for (const name of ['inet_interfaces', 'proxy_interfaces']) {
    for (const v of config.list(name)) {
      const low = v.toLowerCase();
      if (low === 'all') interfaceAddresses().forEach((a) => out.add(a));
      else if (low === 'loopback-only') ['127.0.0.1', '::1'].forEach((a) => out.add(a));
      else if (parseIp(v)) out.add(normalizeIp(v));
    }
  }
  return [...out];
}

export function isSelfFn(config: Config): (ip: string) => boolean {
  const mine = new Set(myAddresses(config));
  return (ip) => mine.has(normalizeIp(ip));
}

function protocols(config: Config): Array<'ipv4' | 'ipv6'> {
  const v = config.list('inet_protocols').map((s) => s.toLowerCase());
  if (v.includes('all')) return ['ipv4', 'ipv6'];
  return v.filter((p): p is 'ipv4' | 'ipv6' => p === 'ipv4' || p === 'ipv6');
}

function tlsLevel(config: Config): TlsLevel {
  const v = config.str('smtp_tls_security_level');
  return (v === '' ? 'none' : v.startsWith('dane') ? 'may' : v) as TlsLevel;
}

/** smtp_tls_* and friends for tls-session.ts: policy maps, DANE's resolver, MTA-STS. */
export function outboundTls(config: Config, extras: { mtaSts?: OutboundTls['mtaSts'] } = {}): OutboundTls {
  const refs = config.list('smtp_tls_policy_maps');
  const warn = (m: string) => maillog.logger('smtp').warning(m);
  const tables = refs.length ? TableList.open(refs, { baseDir: config.dir, warn }) : undefined;
  const dnssec = config.str('smtp_dns_support_level') === 'dnssec';
  const split = (v: string) => v.split(/[\s,:]+/).filter(Boolean);
  return {
    level: config.str('smtp_tls_security_level'),
    policyMaps: tables ? (key) => tables.get(key) : undefined,
    policyMapsTitle: refs.join(' '),
    protocols: config.str('smtp_tls_protocols'),
    mandatoryProtocols: config.str('smtp_tls_mandatory_protocols'),
    verifyMatch: split(config.str('smtp_tls_verify_cert_match')),
    secureMatch: split(config.str('smtp_tls_secure_cert_match')),
    dnssec,
    secureDns: dnssec ? new SecureDns({ servers: config.list('backstop_dns_servers'), timeoutMs: config.time('backstop_dns_timeout') * 1000 }) : undefined,
    mtaSts: extras.mtaSts,
  };
}

/** The delivery client's options; `verify` uses address_verify_relayhost / _transport_maps. */
export function deliveryOptions(config: Config, deps: { dns: Resolver; cache: ConnectionCache }, forVerify = false): DeliveryOptions {
  const mapsParam = forVerify ? 'address_verify_transport_maps' : 'transport_maps';
  const refs = config.list(mapsParam);
  const tables = refs.length ? TableList.open(refs, { baseDir: config.dir, warn: (m) => maillog.logger('smtp').warning(m) }) : undefined;
  const ca = config.str('smtp_tls_CAfile');
  return {
    dns: deps.dns,
    transportMaps: tables ? (key) => tables.get(key) : undefined,
    relayhost: config.str(forVerify ? 'address_verify_relayhost' : 'relayhost'),
    isSelf: isSelfFn(config),
    inetProtocols: protocols(config),
    randomize: config.bool('smtp_randomize_addresses'),
    cache: deps.cache,
    mxAddressLimit: config.int('smtp_mx_address_limit'),
    mxSessionLimit: config.int('smtp_mx_session_limit'),
    delayResolution: config.time('delay_logging_resolution_limit'),
    tls: outboundTls(config, { mtaSts: config.bool('backstop_smtp_mta_sts') ? new MtaStsCache({ dns: deps.dns, log: maillog.logger('smtp') }) : undefined }),
    minimalBackoffSec: config.time('minimal_backoff_time'),
    session: {
      heloName: config.str('smtp_helo_name'),
      tlsLevel: tlsLevel(config),
      tlsCa: ca ? readFileSync(ca) : undefined,
      bindAddress: config.str('smtp_bind_address') || undefined,
      lineLengthLimit: config.int('line_length_limit'),
      smtpLineLengthLimit: config.int('smtp_line_length_limit'),
      xforward: config.bool('smtp_send_xforward_command'),
      xclient: config.bool('backstop_smtp_send_xclient'),
      timeouts: smtpTimeoutsFrom(config),
    },
  };
}

export function connectionCache(config: Config): ConnectionCache {
  return new ConnectionCache({
    idleSeconds: config.time('smtp_connection_cache_time_limit'),
    reuseSeconds: config.time('smtp_connection_reuse_time_limit'),
    reuseCountLimit: config.int('smtp_connection_reuse_count_limit'),
  });
}
