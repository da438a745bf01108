// The DNS lookups the SMTP client needs, as a small interface that src/dns's Resolver
// satisfies (tests and other callers may hand in anything with the same shape). Answers keep
// temporary and permanent failures apart; "unknown" is temporary (tempFail).

import type { DnsResult, MxResult } from '../dns/index.js';

export type DnsAnswer<T> = DnsResult<T> | { status: 'nullMx' };

export interface DnsLookup {
  mx(domain: string): Promise<MxResult>;
  a(name: string): Promise<DnsResult<string>>;
  aaaa(name: string): Promise<DnsResult<string>>;
}
