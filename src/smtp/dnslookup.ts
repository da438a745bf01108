// The DNS lookups the SMTP client needs, as a small interface: src/dns's Resolver satisfies it.
// Answers keep temporary and permanent failures apart; "unknown" is temporary (tempFail).

export type DnsAnswer<T> =
  | { status: 'ok'; records: T[] }
  | { status: 'notFound' }
  | { status: 'noData' }
  | { status: 'tempFail'; error?: unknown }
  | { status: 'nullMx' };

export interface MxRecord {
  exchange: string;
  priority: number;
}

export interface DnsLookup {
  mx(domain: string): Promise<DnsAnswer<MxRecord>>;
  a(name: string): Promise<DnsAnswer<string>>;
  aaaa(name: string): Promise<DnsAnswer<string>>;
}
