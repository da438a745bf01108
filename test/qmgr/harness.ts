// Test harness for the queue manager: a real queue in a fresh folder, the real SMTP client and
// resolver against the loopback DNS server, SMTP sinks on 127.0.0.2 (primary of example.test) and
// 127.0.0.3 (sender.test, where notices arrive). All sinks share one port so that the primary can
// go down and come back on the same address.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Maillog } from '../../src/log/index.js';
import { enqueue, Queue } from '../../src/queue/index.js';
import { Resolver } from '../../src/dns/index.js';
import { ConnectionCache, type DeliveryOptions } from '../../src/smtp/index.js';
import type { Envelope } from '../../src/mail/index.js';
import { createQmgr, createNoticeBuilder, type Qmgr, type QmgrParams } from '../../src/qmgr/index.js';
import { loadConfig, type LoadedConfig } from '../../src/config/index.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dnsserver.js';
import { startSink, type Sink, type SinkOptions } from '../helpers/sink.js';
import { freePort, waitFor } from '../helpers/net.js';

export const ZONE = {
  'example.test': { MX: [[10, 'mx1.example.test']] as Array<[number, string]> },
  'mx1.example.test': { A: ['127.0.0.2'] },
  'sender.test': { MX: [[10, 'mx.sender.test']] as Array<[number, string]> },
  'mx.sender.test': { A: ['127.0.0.3'] },
};

export interface Harness {
  dir: string;
  port: number;
  dns: TestDnsServer;
  queue: Queue;
  qmgr: Qmgr;
  maillog: Maillog;
  lines: string[];
  delivery: DeliveryOptions;
  senderSink: Sink;
  primary: Sink | null;
  startPrimary(opts?: SinkOptions): Promise<Sink>;
  stopPrimary(): Promise<void>;
  submit(sender: string, rcpts: string[], body?: string, arrivalTime?: number): Promise<string>;
  waitLine(re: RegExp, timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

export function envelope(sender: string, rcpts: string[], arrivalTime = Date.now()): Envelope {
  return {
    sender,
    recipients: rcpts.map((address) => ({ address })),
    client: { name: 'client.test', address: '127.0.0.9', helo: 'client.test', protocol: 'ESMTP' },
    arrivalTime,
  };
}

export async function startHarness(
  params: Partial<QmgrParams>,
  opts: { primary?: SinkOptions | false; now?: () => number; doubleBounceRecipient?: string; start?: boolean } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  const port = await freePort('127.0.0.2', '127.0.0.3');
  const dns = await startDnsServer(ZONE);
  const maillog = new Maillog();
  maillog.open(undefined, { quiet: true });
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  maillog.addSink((r) => {
    lines.push(r.text);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].re.test(r.text)) {
        waiters[i].resolve(r.text);
        waiters.splice(i, 1);
      }
    }
  });
  const queue = await Queue.open({ queueDirectory: join(dir, 'spool'), maillog });
  const resolver = new Resolver({ servers: [dns.servers], timeoutMs: 2000, cacheSize: 0 });
  const delivery: DeliveryOptions = {
    dns: resolver,
    isSelf: () => false,
    defaultPort: port,
    session: { heloName: 'backup.test', timeouts: { smtp_connect_timeout: 2, smtp_helo_timeout: 5, smtp_mail_timeout: 5, smtp_rcpt_timeout: 5, smtp_data_init_timeout: 5, smtp_data_xfer_timeout: 5, smtp_data_done_timeout: 5, smtp_rset_timeout: 5, smtp_quit_timeout: 2 } },
    cache: new ConnectionCache({ idleSeconds: 2 }),
    logger: maillog.logger('smtp'),
  };
  const senderSink = await startSink({ host: '127.0.0.3', port });
  const qmgr = createQmgr({
    queue,
    delivery,
    notices: createNoticeBuilder({ myhostname: 'backup.test', doubleBounceRecipient: opts.doubleBounceRecipient ?? 'postmaster@sender.test', log: maillog.logger('bounce') }),
    params,
    now: opts.now,
    log: maillog.logger('qmgr'),
  });
  const h: Harness = {
    dir,
    port,
    dns,
    queue,
    qmgr,
    maillog,
    lines,
    delivery,
    senderSink,
    primary: null,
    async startPrimary(o: SinkOptions = {}) {
      h.primary = await startSink({ ...o, host: '127.0.0.2', port });
      return h.primary;
    },
    async stopPrimary() {
      await h.primary?.close();
      h.primary = null;
    },
    submit(sender, rcpts, body = 'hello', arrivalTime = Date.now()) {
      const content = `From: <${sender}>\r\nTo: <${rcpts[0]}>\r\nSubject: test\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@client.test>\r\n\r\n${body}\r\n`;
      return enqueue(queue, envelope(sender, rcpts, arrivalTime), Readable.from([Buffer.from(content)]));
    },
    waitLine(re, timeoutMs = 5000) {
      const found = lines.find((l) => re.test(l));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const w = { re, resolve: (l: string) => { clearTimeout(t); resolve(l); } };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no log line ${re} within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    async close() {
      await qmgr.stop(5000);
      await queue.close();
      await h.primary?.close();
      await senderSink.close();
      await dns.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (opts.primary !== false) await h.startPrimary(opts.primary || {});
  if (opts.start !== false) await qmgr.start();
  return h;
}

/** Polls `cond` every 20 ms until true; throws after `timeoutMs`. */
export async function until(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  await waitFor(cond, timeoutMs, what, 20);
}

/**
 * A configuration for the server's own queue side (startQueueSide) in `dir`/etc: the queue in
 * `dir`, mail for example.test following its MX record (ZONE, on `dnsServers`) to port `port`,
 * plus `extra` main.cf lines.
 */
export function queueSideConfig(dir: string, dnsServers: string, port: number, extra: string[] = []): LoadedConfig {
  const etc = join(dir, 'etc');
  mkdirSync(etc, { recursive: true });
  writeFileSync(join(etc, 'main.cf'), [
    'myhostname = backup.test',
    'mydestination =',
    `queue_directory = ${join(dir, 'spool')}`,
    `data_directory = ${join(dir, 'data')}`,
    `backstop_dns_servers = ${dnsServers}`,
    `transport_maps = inline:{ example.test=smtp:example.test:${port} }`,
    ...extra,
  ].join('\n') + '\n');
  return loadConfig(etc);
}
