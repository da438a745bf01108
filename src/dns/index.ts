// The dns module's public face: the resolver, its result types, DNSBL filters and the
// IP reversal helpers. Other modules import dns only from here.
export { Resolver, classify, queryName, type ResolverOptions } from './resolver.js';
export { parseRblFilter, rblFilterMatches, type RblFilter } from './rblfilter.js';
export { normaliseIp, parseIp, ptrName, reverseIp } from './reverse.js';
export type {
  ClientName,
  ClientNameStatus,
  DnsError,
  DnsResult,
  InetProtocols,
  MxRecord,
  MxResult,
  RblResult,
} from './types.js';
export { SecureDns, type SecureDnsOptions, type SecureResult, type TlsaRecord } from './dnssec.js';
