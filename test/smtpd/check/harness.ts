// Test harness for the restriction engine: a real DNS server on loopback with the zones the
// tests need, real table files in a fresh temporary folder, a real verifier that probes an SMTP
// sink over a socket (SMTP interruptus: MAIL, RCPT, QUIT), and a session builder.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config } from '../../../src/config/index.js';
import { Resolver } from '../../../src/dns/index.js';
import { Maillog } from '../../../src/log/index.js';
import { createRestrictionEngine, type RestrictionEngine, type SessionInfo } from '../../../src/smtpd/check/index.js';
import type { Verifier, VerifyResult } from '../../../src/verify/types.js';
import { startDnsServer, type TestDnsServer, type ZoneSpec } from '../../helpers/dnsserver.js';
import { RawClient } from '../../helpers/smtp-client.js';

export const ZONE: ZoneSpec = {
  // We are mx2.backup.test (127.0.0.1), the primary is 127.0.0.2.
  'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
  'mx1.primary.test': { A: ['127.0.0.2'] },
  'mx2.backup.test': { A: ['127.0.0.1'] },
  'elsewhere.test': { MX: [[10, 'mx1.elsewhere.test'], [20, 'mx2.backup.test']] },
  'mx1.elsewhere.test': { A: ['127.0.0.4'] },
  'other.test': { MX: [[10, 'mx.other.test']] },
  'mx.other.test': { A: ['127.0.0.3'] },
  'weareprimary.test': { MX: [[10, 'mx2.backup.test'], [20, 'mx1.primary.test']] },
  'equal.test': { MX: [[10, 'mx2.backup.test'], [10, 'mx1.primary.test']] },
  'slowmx.test': { MX: 'timeout' },
  'failmx.test': { MX: 'servfail' },
  'brokenprimary.test': { MX: [[10, 'gone.test'], [20, 'mx2.backup.test']] },
  'nullmx.test': { MX: [[0, '.']] },
  'aonly.test': { A: ['127.0.0.9'] },
  'client.test': { A: ['127.0.0.1'] },
  // DNS lists
  '2.0.0.127.zen.test': { A: ['127.0.0.2'], TXT: ['https://www.spamhaus.org/query/ip/127.0.0.2'] },
  '3.0.0.127.zen.test': { A: ['127.0.0.4'] },
  '9.0.0.127.zen.test': { A: ['127.255.255.254'] },
  '8.0.0.127.zen.test': 'timeout',
  'spammer.test.multi.uribl.test': { A: ['127.0.0.2'] },
  '2.0.0.127.wl.test': { A: ['127.0.10.1'] },
};

export interface Harness {
  dir: string;
  dns: TestDnsServer;
  resolver: Resolver;
  log: Maillog;
  lines: string[];
  file(name: string, text: string): string;
  engine(mainCf: string, opts?: { verifier?: Verifier; myAddresses?: string[] }): RestrictionEngine;
  close(): Promise<void>;
}

export async function startHarness(zone: ZoneSpec = ZONE): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  const dns = await startDnsServer(zone);
  // 3 s: on a loaded CI machine a short limit turns a listed answer into a timeout (no block).
  const resolver = new Resolver({ servers: [dns.servers], timeoutMs: 3000 });
  const log = new Maillog();
  log.open(undefined, { quiet: true });
  const lines: string[] = [];
  log.addSink((r) => lines.push(r.text));
  const engines: RestrictionEngine[] = [];
  return {
    dir, dns, resolver, log, lines,
    file(name, text) {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    engine(mainCf, opts = {}) {
      // These tests look at the restriction lists themselves; the implicit unlisted-recipient
      // check that follows them (our own addresses have no mailboxes) is tested on its own.
      const config = Config.fromText(/smtpd_reject_unlisted_recipient/.test(mainCf) ? mainCf : `${mainCf}\nsmtpd_reject_unlisted_recipient = no\n`, dir);
      const e = createRestrictionEngine(config, {
        dns: resolver,
        verifier: opts.verifier,
        myAddresses: () => opts.myAddresses ?? ['127.0.0.1'],
        log: log.logger('smtpd'),
      });
      engines.push(e);
      return e;
    },
    async close() {
      for (const e of engines) await e.close();
      resolver.close();
      await dns.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function session(over: Partial<SessionInfo> = {}): SessionInfo {
  return {
    stage: 'rcpt',
    clientAddress: '127.0.0.1',
    clientPort: 40000,
    clientName: 'client.test',
    reverseClientName: 'client.test',
    serverAddress: '127.0.0.1',
    serverPort: 25,
    helo: 'client.test',
    protocol: 'ESMTP',
    tls: false,
    sender: 'sender@client.test',
    recipient: 'user@primary.test',
    recipientCount: 0,
    instance: 'abc.123.0',
    ...over,
  };
}

/** "554 5.7.1 text" of a verdict, or "accept". */
export function show(v: { action: string; reply?: { code: number; dsn: string; text: string } }): string {
  return v.reply ? `${v.reply.code} ${v.reply.dsn} ${v.reply.text}` : 'accept';
}

/** One scripted session: the last line of the greeting and of each command's reply. */
async function smtpTalk(host: string, port: number, lines: string[], timeoutMs: number): Promise<string[]> {
  const { c, greeting } = await RawClient.open(port, host, { timeoutMs });
  try {
    const replies = [greeting.lines[greeting.lines.length - 1]];
    for (const line of lines) {
      const r = await c.cmd(line);
      replies.push(r.lines[r.lines.length - 1]);
    }
    return replies;
  } finally {
    c.close();
  }
}

/**
 * A small real verifier: probes the primary (an SMTP sink) with MAIL/RCPT/QUIT and caches the
 * answer, like verify(8) without persistence. A probe slower than `budgetMs` answers pending.
 */
export class ProbingVerifier implements Verifier {
  readonly cache = new Map<string, VerifyResult>();
  probes = 0;
  constructor(private readonly host: string, private readonly port: number, private readonly budgetMs = 2000) {}

  async check(address: string): Promise<VerifyResult> {
    const hit = this.cache.get(address.toLowerCase());
    if (hit) return hit;
    this.probes++;
    const probe = this.probe(address).then((r) => { this.cache.set(address.toLowerCase(), r); return r; });
    const pending = new Promise<VerifyResult>((r) => setTimeout(() => r({ status: 'pending', text: 'Address verification in progress' }), this.budgetMs).unref());
    return Promise.race([probe, pending]);
  }

  private async probe(address: string): Promise<VerifyResult> {
    const relay = `${this.host}[${this.host}]`;
    let replies: string[];
    try {
      replies = await smtpTalk(this.host, this.port, ['EHLO mx2.backup.test', 'MAIL FROM:<double-bounce@mx2.backup.test>', `RCPT TO:<${address}>`, 'QUIT'], 10_000);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'Connection refused' : (err as Error).message;
      return { status: 'tempfail', text: `connect to ${relay}:${this.port}: ${code}` };
    }
    const rcpt = replies[3] ?? '';
    if (rcpt.startsWith('2')) return { status: 'deliverable', text: rcpt };
    const said = `host ${relay} said: ${rcpt} (in reply to RCPT TO command)`;
    return rcpt.startsWith('5') ? { status: 'undeliverable', text: said } : { status: 'tempfail', text: said };
  }
}
