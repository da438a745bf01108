// MTA-STS (RFC 8461) for the delivery client, which Postfix only has through an external policy
// server: the `_mta-sts.DOMAIN` TXT record names the current policy id; the policy itself comes
// from https://mta-sts.DOMAIN/.well-known/mta-sts.txt (PKIX-verified against Node's roots plus
// NODE_EXTRA_CA_CERTS, no redirects, 200 and text/plain only, at most 64 KiB, bounded in time).
// Policies are cached for their max_age; a cached policy is used while its TXT id is unchanged
// (checked at most once a minute) and kept when a refresh fails (RFC 8461 section 5.1), so an
// attacker who blocks the policy host cannot downgrade a known `enforce` policy. No policy, or a
// policy that cannot be fetched for a domain we know nothing about, means "no MTA-STS".
// Parsing and MX matching are mailauth's (Andris Reinman's library, well kept and used by
// WildDuck and EmailEngine); the HTTPS fetch is ours because mailauth's fixes port 443 and the
// system resolver, and we need our resolver and a bounded body.
// Trusts the CA store for the policy host; the policy says only which MX names must present
// certificates valid for them.

import { request } from 'node:https';
import type { LookupFunction } from 'node:net';
import { parsePolicy, validateMx, type StsPolicy } from 'mailauth/lib/mta-sts.js';
import type { DnsResult } from '../dns/index.js';
import type { Logger } from '../log/index.js';
import type { StsSource, StsVerdict } from './tls-session.js';

/** The lookups MTA-STS needs (src/dns's Resolver has them). */
export interface StsDns {
  txt(name: string): Promise<DnsResult<string>>;
  a(name: string): Promise<DnsResult<string>>;
}

export interface MtaStsOptions {
  dns: StsDns;
  log?: Logger;
  /** Deadline of one policy fetch (default 15 s). */
  timeoutMs?: number;
  /** Port of the policy host (443; tests use another). */
  port?: number;
  /** CA certificates to trust instead of Node's (tests); default Node's roots + NODE_EXTRA_CA_CERTS. */
  ca?: string | Buffer;
  now?: () => number;
}

interface Entry {
  id: string;
  policy: StsPolicy;
  expires: number;
  checked: number;
}

const TXT_RECHECK_MS = 60_000;
const NEGATIVE_MS = 10 * 60_000;
const MAX_BODY = 64 * 1024;

/** The policy id of a TXT record set: exactly one "v=STSv1; id=…" record (RFC 8461 section 3.1). */
export function stsRecordId(records: string[]): string | undefined {
  const sts = records.map((r) => r.trim()).filter((r) => /^v=STSv1\s*(;|$)/.test(r));
  if (sts.length !== 1) return undefined;
  const id = /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(?:;|$)/.exec(sts[0]);
  return id?.[1];
}

export class MtaStsCache implements StsSource {
  private readonly cache = new Map<string, Entry>();
  private readonly none = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly opts: MtaStsOptions) {
    this.now = opts.now ?? Date.now;
  }

  async policy(domain: string): Promise<StsVerdict | undefined> {
    const d = domain.toLowerCase();
    const now = this.now();
    const cached = this.cache.get(d);
    if (cached && cached.expires <= now) this.cache.delete(d);
    const live = cached && cached.expires > now ? cached : undefined;
    if (live && now - live.checked < TXT_RECHECK_MS) return verdict(live.policy);
    if (!live && (this.none.get(d) ?? 0) > now) return undefined;

    const txt = await this.opts.dns.txt(`_mta-sts.${d}`);
    const id = txt.status === 'ok' ? stsRecordId(txt.records) : undefined;
    if (live) {
      live.checked = now;
      // Same id, or no answer at all (maybe an attacker): the cached policy stands.
      if (!id || id === live.id) return verdict(live.policy);
    } else if (!id) {
      this.none.set(d, now + NEGATIVE_MS);
      return undefined;
    }
    try {
      const policy = parsePolicy(await this.fetch(d));
      const entry = { id: id!, policy, expires: now + policy.maxAge * 1000, checked: now };
      this.cache.set(d, entry);
      this.opts.log?.info(`MTA-STS policy for ${d}: id=${id} mode=${policy.mode} max_age=${policy.maxAge}`);
      return verdict(policy);
    } catch (err) {
      this.opts.log?.warning(`MTA-STS policy for ${d}: cannot fetch https://mta-sts.${d}/.well-known/mta-sts.txt: ${(err as Error).message}`);
      if (live) return verdict(live.policy);
      this.none.set(d, now + NEGATIVE_MS);
      return undefined;
    }
  }

  /** GET the policy file: 200 text/plain within the size and time limits, or an error. */
  private fetch(domain: string): Promise<string> {
    const host = `mta-sts.${domain}`;
    const dns = this.opts.dns;
    const lookup: LookupFunction = (hostname, options, cb) => {
      dns.a(hostname).then((r) => {
        const err = r.status === 'ok' ? null : Object.assign(new Error(`${hostname}: no address (${r.status})`), { code: 'ENOTFOUND' });
        const ip = r.status === 'ok' ? r.records[0] : '';
        if ((options as { all?: boolean }).all) (cb as unknown as (e: Error | null, a: Array<{ address: string; family: number }>) => void)(err, err ? [] : [{ address: ip, family: 4 }]);
        else cb(err, ip, 4);
      }, (e: Error) => cb(e, '', 4));
    };
    return new Promise((resolve, reject) => {
      const req = request({
        host,
        port: this.opts.port ?? 443,
        path: '/.well-known/mta-sts.txt',
        method: 'GET',
        servername: host,
        lookup,
        ca: this.opts.ca,
        rejectUnauthorized: true,
        timeout: this.opts.timeoutMs ?? 15_000,
        headers: { 'user-agent': 'backstop' },
      }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`HTTP status ${res.statusCode}`));
        }
        if (!/^text\/plain\b/i.test(res.headers['content-type'] ?? '')) {
          res.resume();
          return reject(new Error(`content type ${res.headers['content-type'] ?? 'missing'}, not text/plain`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) return req.destroy(new Error(`policy larger than ${MAX_BODY} bytes`));
          chunks.push(c);
        });
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end();
    });
  }
}

function verdict(policy: StsPolicy): StsVerdict {
  return { mode: policy.mode, mxMatches: (host) => validateMx(host, policy).valid };
}
