// Shared set-up for the verify tests: a real primary (SMTP sink on 127.0.0.2) found through a
// real DNS server on loopback, the SMTP client's real probe(), a controllable clock, captured
// log lines and a scratch folder. Nothing here is a stand-in for the code under test.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Maillog, type LogRecord } from '../../src/log/index.js';
import { Resolver } from '../../src/dns/index.js';
import { probe } from '../../src/smtp/index.js';
import type { Prober } from '../../src/verify/index.js';
import { startSink, type Sink, type SinkOptions } from '../helpers/sink.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dnsserver.js';

export interface Primary {
  sink: Sink;
  dns: TestDnsServer;
  port: number;
  prober: Prober;
  /** Stop the primary (its port then refuses connections). */
  stop(): Promise<void>;
  /** Start it again on the same port. */
  restart(opts?: SinkOptions): Promise<void>;
  close(): Promise<void>;
  /** Probe log lines from the SMTP client. */
  lines: LogRecord[];
}

const USERS = ['user@primary.test', 'alice@primary.test', 'bob@primary.test'];

/** Known users get smtp-server's `250 Accepted`; others `550 5.1.1 <a>: Recipient address rejected: User unknown`. */
export const ACCEPTED = '250 Accepted';

function sinkOptions(opts: SinkOptions, port = 0): SinkOptions {
  return { host: '127.0.0.2', port, users: USERS, ...opts };
}

export async function startPrimary(opts: SinkOptions = {}): Promise<Primary> {
  let sink = await startSink(sinkOptions(opts));
  const port = sink.port;
  const dns = await startDnsServer({
    'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
    'mx1.primary.test': { A: ['127.0.0.2'] },
    'mx2.backup.test': { A: ['127.0.0.1'] },
  });
  const resolver = new Resolver({ servers: [dns.servers], timeoutMs: 2000 });
  const log = new Maillog();
  log.open(undefined, { quiet: true });
  const lines: LogRecord[] = [];
  log.addSink((r) => lines.push(r));
  const prober: Prober = (address, sender) =>
    probe(address, sender, {
      dns: resolver,
      isSelf: (ip) => ip === '127.0.0.1',
      defaultPort: port,
      inetProtocols: ['ipv4'],
      session: { heloName: 'mx2.backup.test', timeouts: { smtp_connect_timeout: 2, smtp_helo_timeout: 5, smtp_mail_timeout: 5, smtp_rcpt_timeout: 5 } },
      logger: log.logger('smtp'),
    });
  let stopped = false;
  const p: Primary = {
    get sink() {
      return sink;
    },
    dns,
    port,
    prober,
    lines,
    async stop() {
      if (!stopped) await sink.close();
      stopped = true;
    },
    async restart(o: SinkOptions = {}) {
      sink = await startSink(sinkOptions({ ...opts, ...o }, port));
      stopped = false;
    },
    async close() {
      await p.stop();
      resolver.close();
      await dns.close();
    },
  };
  return p;
}

export class Clock {
  constructor(public ms = Date.UTC(2026, 10, 24, 19, 0, 0)) {}
  now = (): number => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
  get sec(): number {
    return Math.floor(this.ms / 1000);
  }
}

export function captureLog(service = 'verify'): { log: ReturnType<Maillog['logger']>; lines: string[] } {
  const m = new Maillog();
  m.open(undefined, { quiet: true });
  const lines: string[] = [];
  m.addSink((r) => lines.push(r.text));
  return { log: m.logger(service), lines };
}

export function scratch(): { dir: string; remove(): void } {
  const dir = mkdtempSync(tmpdir() + '/backstop-');
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
