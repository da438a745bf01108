// Backstop's DNS client: MX, A/AAAA, PTR and TXT lookups, Postfix's forward-confirmed client
// name, and DNSBL/RHSBL queries, through node:dns (c-ares) against the servers in
// backstop_dns_servers (or /etc/resolv.conf when that list is empty).
// It trusts the DNS servers it is given for content, but not for time: every query has a
// deadline, and every failure that is not a definite NXDOMAIN/NODATA is temporary.
// It does not log; callers log what the outcome means for them.

import dns from 'node:dns';
import net from 'node:net';
import { InFlight, TtlLru } from './cache.js';
import { rblFilterMatches, type RblFilter } from './rblfilter.js';
import { normaliseIp, parseIp, ptrName, reverseIp } from './reverse.js';
import { hostnameProblem } from '../mail/index.js';
import type {
  ClientName,
  DnsError,
  DnsResult,
  InetProtocols,
  MxRecord,
  MxResult,
  RblResult,
} from './types.js';

export interface ResolverOptions {
  /** backstop_dns_servers: "IP", "IP:port" or "[IPv6]:port"; empty/absent = /etc/resolv.conf. */
  servers?: readonly string[];
  /** Deadline of one query, all retries included (default 10 000 ms). */
  timeoutMs?: number;
  /** Cached answers at most (LRU, default 10 000; 0 disables the cache). */
  cacheSize?: number;
  /** Clock for cache expiry, in ms (default Date.now). */
  now?: () => number;
  /** Lifetime of MX/TXT/PTR answers, whose TTL node:dns does not report (default 60 s). */
  defaultTtlSec?: number;
  /** Upper bound on any cached lifetime (default 3600 s). */
  maxTtlSec?: number;
  /** Lifetime of NXDOMAIN/NODATA answers (default 60 s). */
  negativeTtlSec?: number;
}

const DEFAULTS = {
  timeoutMs: 10_000,
  cacheSize: 10_000,
  defaultTtlSec: 60,
  maxTtlSec: 3600,
  negativeTtlSec: 60,
};

/** The 127.255.255.0/24 block where DNSBLs (Spamhaus) put error codes, not listings. */
function isListErrorCode(address: string): boolean {
  return address.startsWith('127.255.255.');
}

/**
 * A query name in canonical form (lower case, no trailing dot), or undefined when it could
 * not be a DNS name at all: empty labels, a label over 63 or a name over 253 octets,
 * spaces or control characters. Such names are answered notFound without a query, as a
 * resolver would refuse them (c-ares EBADNAME, Postfix DNS_INVAL: a permanent failure).
 */
export function queryName(name: string): string | undefined {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (n === '' || n.length > 253 || !/^[\x21-\x7e]+$/.test(n)) return undefined;
  for (const label of n.split('.')) {
    if (label.length === 0 || label.length > 63) return undefined;
  }
  return n;
}

function errorOf(err: unknown): DnsError {
  const e = err as NodeJS.ErrnoException;
  return { code: typeof e?.code === 'string' ? e.code : 'EUNKNOWN', message: String(e?.message ?? err) };
}

/**
 * node:dns error code → outcome. Only ENOTFOUND (NXDOMAIN) and ENODATA (NODATA) are
 * permanent (EBADNAME too: the name can never resolve); everything else — ESERVFAIL,
 * ETIMEOUT, ECONNREFUSED, EREFUSED, ECANCELLED and codes we have never seen — is
 * temporary, because mistaking an outage for "no such domain" would bounce or reject mail.
 */
export function classify(err: unknown): DnsResult<never> {
  const error = errorOf(err);
  switch (error.code) {
    case 'ENOTFOUND':
    case 'EBADNAME':
      return { status: 'notFound' };
    case 'ENODATA':
      return { status: 'noData' };
    default:
      return { status: 'tempFail', error };
  }
}

function wantsFamily(protocols: InetProtocols, family: 'ipv4' | 'ipv6'): boolean {
  if (protocols === 'all') return true;
  if (typeof protocols === 'string') return protocols === family;
  return protocols.includes(family);
}

/** Check a backstop_dns_servers entry; node's setServers accepts exactly these forms. */
function checkServer(server: string): void {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(server);
  const hostPort = /^([^:]+):(\d+)$/.exec(server);
  let host: string;
  let port: string | undefined;
  if (bracketed) [, host, port] = bracketed as unknown as [string, string, string | undefined];
  else if (hostPort) [, host, port] = hostPort as unknown as [string, string, string];
  else host = server;
  const family = net.isIP(host);
  const portOk = port === undefined || (Number(port) >= 1 && Number(port) <= 65535);
  if (family === 0 || (bracketed && family !== 6) || !portOk) {
    throw new Error(`backstop_dns_servers: invalid server "${server}": expected IP, IP:port or [IPv6]:port`);
  }
}

type Cached = DnsResult<unknown> | MxResult;

export class Resolver {
  private readonly node: dns.promises.Resolver;
  private readonly cache: TtlLru<Cached>;
  private readonly inFlight = new InFlight<Cached>();
  private readonly timeoutMs: number;
  private readonly defaultTtlSec: number;
  private readonly maxTtlSec: number;
  private readonly negativeTtlSec: number;

  constructor(options: ResolverOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
    if (!(this.timeoutMs > 0)) throw new Error(`dns: timeoutMs must be positive, got ${this.timeoutMs}`);
    const cacheSize = options.cacheSize ?? DEFAULTS.cacheSize;
    if (!(cacheSize >= 0)) throw new Error(`dns: cacheSize must be 0 or more, got ${cacheSize}`);
    this.defaultTtlSec = options.defaultTtlSec ?? DEFAULTS.defaultTtlSec;
    this.maxTtlSec = options.maxTtlSec ?? DEFAULTS.maxTtlSec;
    this.negativeTtlSec = options.negativeTtlSec ?? DEFAULTS.negativeTtlSec;
    this.cache = new TtlLru<Cached>(cacheSize, options.now ?? Date.now);
    // c-ares retries with a growing per-try timeout (roughly t, then 2t); two tries of a
    // third of the deadline each fit inside it. Our own timer below is the hard limit.
    this.node = new dns.promises.Resolver({ timeout: Math.max(1, Math.floor(this.timeoutMs / 3)), tries: 2 });
    const servers = options.servers ?? [];
    if (servers.length > 0) {
      servers.forEach(checkServer);
      this.node.setServers([...servers]);
    }
  }

  /** Cancel outstanding queries (they end as tempFail ECANCELLED) and drop the cache. */
  close(): void {
    this.node.cancel();
    this.cache.clear();
  }

  /** MX records sorted by preference (stable: equal preferences keep DNS order). */
  mx(domain: string): Promise<MxResult> {
    return this.lookup('MX', domain, async (name) => {
      const answer = await this.node.resolveMx(name);
      const records: MxRecord[] = answer
        .map((r) => ({ exchange: r.exchange.toLowerCase().replace(/\.$/, ''), preference: r.priority }))
        .sort((x, y) => x.preference - y.preference);
      // RFC 7505 null MX: a lone "0 ." record (node reports the root as ""). A root
      // exchange next to real hosts is not a null MX; it is dropped as unusable.
      const hosts = records.filter((r) => r.exchange !== '');
      if (hosts.length === 0) return { status: 'nullMx' };
      return { status: 'ok', records: hosts, ttl: this.defaultTtlSec };
    }) as Promise<MxResult>;
  }

  /** IPv4 addresses, with the TTL the server gave (lowest of the set). */
  a(name: string): Promise<DnsResult<string>> {
    return this.lookup('A', name, async (n) => {
      const answer = await this.node.resolve4(n, { ttl: true });
      return { status: 'ok', records: answer.map((r) => r.address), ttl: Math.min(...answer.map((r) => r.ttl)) };
    }) as Promise<DnsResult<string>>;
  }

  /** IPv6 addresses, with the TTL the server gave (lowest of the set). */
  aaaa(name: string): Promise<DnsResult<string>> {
    return this.lookup('AAAA', name, async (n) => {
      const answer = await this.node.resolve6(n, { ttl: true });
      return { status: 'ok', records: answer.map((r) => r.address), ttl: Math.min(...answer.map((r) => r.ttl)) };
    }) as Promise<DnsResult<string>>;
  }

  /**
   * A and/or AAAA as inet_protocols allows (IPv4 first). As Postfix's multi-type lookup:
   * ok when any type answered; else tempFail when any type failed temporarily; else
   * notFound when the name does not exist; else noData.
   */
  async addresses(name: string, options: { inet_protocols?: InetProtocols } = {}): Promise<DnsResult<string>> {
    const protocols = options.inet_protocols ?? 'all';
    const lookups: Array<Promise<DnsResult<string>>> = [];
    if (wantsFamily(protocols, 'ipv4')) lookups.push(this.a(name));
    if (wantsFamily(protocols, 'ipv6')) lookups.push(this.aaaa(name));
    if (lookups.length === 0) throw new Error(`dns: inet_protocols enables no address family`);
    const results = await Promise.all(lookups);
    const oks = results.filter((r): r is Extract<DnsResult<string>, { status: 'ok' }> => r.status === 'ok');
    if (oks.length > 0) {
      return { status: 'ok', records: oks.flatMap((r) => r.records), ttl: Math.min(...oks.map((r) => r.ttl)) };
    }
    const temp = results.find((r) => r.status === 'tempFail');
    if (temp) return temp;
    if (results.some((r) => r.status === 'notFound')) return { status: 'notFound' };
    return { status: 'noData' };
  }

  /** PTR names of an address (lower case, no trailing dot). Throws TypeError on a non-IP. */
  ptr(ip: string): Promise<DnsResult<string>> {
    return this.lookup('PTR', ptrName(ip), async (n) => {
      const answer = await this.node.resolvePtr(n);
      return { status: 'ok', records: answer.map((r) => r.toLowerCase().replace(/\.$/, '')), ttl: this.defaultTtlSec };
    }) as Promise<DnsResult<string>>;
  }

  /** TXT records, each one's character-strings joined (RFC 7208 §3.3). */
  txt(name: string): Promise<DnsResult<string>> {
    return this.lookup('TXT', name, async (n) => {
      const answer = await this.node.resolveTxt(n);
      return { status: 'ok', records: answer.map((chunks) => chunks.join('')), ttl: this.defaultTtlSec };
    }) as Promise<DnsResult<string>>;
  }

  /**
   * Postfix's client name (smtpd_peer.c): the first PTR name, kept only when it is a valid
   * hostname and its addresses of the client's family include the client address.
   * Otherwise 'unknown', with a status that tells why: 'temp' (a lookup failed
   * temporarily: reject_unknown_client_hostname must defer, not reject), 'perm' (no
   * usable PTR) or 'forged' (the name does not resolve back). Throws TypeError on a non-IP.
   */
  async clientName(ip: string): Promise<ClientName> {
    const { family } = parseIp(ip);
    const addr = normaliseIp(ip);
    const unknown = 'unknown';
    const reverse = await this.ptr(addr);
    if (reverse.status === 'tempFail') {
      return { name: unknown, reverseName: unknown, nameStatus: 'temp', reverseNameStatus: 'temp', temporary: true };
    }
    if (reverse.status !== 'ok') {
      return { name: unknown, reverseName: unknown, nameStatus: 'perm', reverseNameStatus: 'perm', temporary: false };
    }
    const ptr = reverse.records[0] as string;
    const problem = hostnameProblem(ptr);
    if (problem) {
      return {
        name: unknown,
        reverseName: unknown,
        nameStatus: 'perm',
        reverseNameStatus: 'perm',
        temporary: false,
        warning: problem,
      };
    }
    const forward = family === 4 ? await this.a(ptr) : await this.aaaa(ptr);
    const rejected = (nameStatus: 'temp' | 'forged', warning: string): ClientName => ({
      name: unknown,
      reverseName: ptr,
      nameStatus,
      reverseNameStatus: 'ok',
      temporary: nameStatus === 'temp',
      warning,
    });
    switch (forward.status) {
      case 'tempFail':
        return rejected('temp', `hostname ${ptr} does not resolve to address ${addr}: Temporary failure in name resolution`);
      case 'notFound':
        return rejected('forged', `hostname ${ptr} does not resolve to address ${addr}: Name or service not known`);
      case 'noData':
        return rejected('forged', `hostname ${ptr} does not resolve to address ${addr}: No address associated with hostname`);
      case 'ok':
        if (forward.records.some((r) => normaliseIp(r) === addr)) {
          return { name: ptr, reverseName: ptr, nameStatus: 'ok', reverseNameStatus: 'ok', temporary: false };
        }
        return rejected('forged', `hostname ${ptr} does not resolve to address ${addr}`);
    }
  }

  /** reject_rbl_client: reversed client address + "." + list domain. Throws TypeError on a non-IP. */
  rblLookup(domain: string, ip: string, filter?: RblFilter): Promise<RblResult> {
    return this.listLookup(`${reverseIp(ip)}.${domain.toLowerCase().replace(/\.$/, '')}`, domain, filter);
  }

  /** reject_rhsbl_*: host or domain name + "." + list domain. */
  rhsblLookup(domain: string, name: string, filter?: RblFilter): Promise<RblResult> {
    const n = name.toLowerCase().replace(/\.$/, '');
    return this.listLookup(`${n}.${domain.toLowerCase().replace(/\.$/, '')}`, domain, filter);
  }

  private async listLookup(query: string, domain: string, filter: RblFilter | undefined): Promise<RblResult> {
    const answer = await this.a(query);
    if (answer.status === 'tempFail') return { status: 'tempFail', query, error: answer.error };
    if (answer.status !== 'ok') return { status: 'notListed', query, addresses: [] };
    const addresses = answer.records;
    const errorCode = addresses.find(isListErrorCode);
    if (errorCode !== undefined) {
      return {
        status: 'listError',
        query,
        addresses,
        error: `DNSBL ${domain} answered ${errorCode} for ${query}: an error code (127.255.255.0/24), not a listing`,
      };
    }
    if (filter && !addresses.some((a) => rblFilterMatches(filter, a))) {
      return { status: 'notListed', query, addresses };
    }
    const txt = await this.txt(query);
    return { status: 'listed', query, addresses, texts: txt.status === 'ok' ? txt.records : [], ttl: answer.ttl };
  }

  /**
   * One cached, shared, time-limited query. Lifetimes: ok answers their TTL (or
   * defaultTtlSec where node gives none — MX, TXT, PTR: node:dns reports TTLs only for
   * A/AAAA, and resolveAny would send ANY queries that many servers refuse, RFC 8482),
   * capped by maxTtlSec; NXDOMAIN/NODATA/null MX negativeTtlSec; tempFail not cached,
   * so the next attempt asks again.
   */
  private lookup(type: string, name: string, run: (name: string) => Promise<Cached>): Promise<Cached> {
    const n = queryName(name);
    if (n === undefined) return Promise.resolve({ status: 'notFound' });
    const key = `${type} ${n}`;
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve(hit);
    return this.inFlight.run(key, async () => {
      const result = await this.withDeadline(type, n, run);
      this.cache.set(key, result, this.lifetimeMs(result));
      return result;
    });
  }

  private lifetimeMs(result: Cached): number {
    switch (result.status) {
      case 'ok':
        return Math.min(result.ttl, this.maxTtlSec) * 1000;
      case 'notFound':
      case 'noData':
      case 'nullMx':
        return Math.min(this.negativeTtlSec, this.maxTtlSec) * 1000;
      case 'tempFail':
        return 0;
    }
  }

  private async withDeadline(type: string, name: string, run: (name: string) => Promise<Cached>): Promise<Cached> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<Cached>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            status: 'tempFail',
            error: { code: 'ETIMEOUT', message: `query${type} ETIMEOUT ${name} (no answer within ${this.timeoutMs} ms)` },
          }),
        this.timeoutMs,
      );
    });
    try {
      return await Promise.race([run(name).catch(classify), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}
