// Delivery agent threads (src/master/agents.ts, agent.ts) through the server's own queue side
// (startQueueSide, as the queue manager worker runs it): a real SMTP sink on 127.0.0.2, a real DNS
// server on loopback, real queue files. Checks that deliveries made in the threads arrive once,
// that connections across threads stay under the destination's limit, that their log lines and
// metrics reach the process's maillog and registry, that idle threads leave, and that a thread
// dying mid-delivery loses nothing (its deliveries are deferred and made later).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { maillog, type LogRecord } from '../../src/log/index.js';
import { enqueue } from '../../src/queue/index.js';
import { deliveryAttempts } from '../../src/observe/index.js';
import { startQueueSide, type QueueSide } from '../../src/master/queueside.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dnsserver.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { freePort } from '../helpers/net.js';
import { ZONE, envelope, queueSideConfig } from './harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Lab {
  dir: string;
  dns: TestDnsServer;
  sink: Sink;
  side: QueueSide;
  lines: LogRecord[];
  close(): Promise<void>;
}

async function lab(extra: string[], env: Record<string, string> = {}): Promise<Lab> {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-agents-'));
  const port = await freePort('127.0.0.2', '127.0.0.3');
  const sink = await startSink({ host: '127.0.0.2', port });
  const dns = await startDnsServer(ZONE);
  const lines: LogRecord[] = [];
  const unsink = maillog.addSink((r) => lines.push(r));
  Object.assign(process.env, env);
  const loaded = queueSideConfig(dir, dns.servers, port, ['smtp_tls_security_level = none', 'backstop_smtp_mta_sts = no', ...extra]);
  const side = await startQueueSide(loaded.config, loaded.texts);
  return {
    dir, dns, sink, side, lines,
    async close() {
      await side.stop();
      unsink();
      for (const k of Object.keys(env)) delete process.env[k];
      await sink.close();
      await dns.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function queueMessages(side: QueueSide, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const body = `From: <s@sender.test>\r\nMessage-ID: <${tag}.${i}@sender.test>\r\nSubject: ${tag}\r\n\r\nbody ${i}\r\n`;
    await enqueue(side.queue, envelope('s@sender.test', [`u${i}@example.test`]), Readable.from([Buffer.from(body)]));
  }
}

async function sentCount(): Promise<number> {
  const m = await deliveryAttempts.get();
  return m.values.filter((v) => v.labels.status === 'sent' && v.labels.destination === 'example.test').reduce((a, v) => a + v.value, 0);
}

test('two agent threads deliver every message once, within the destination limit, and leave when idle', { timeout: 60_000 }, async () => {
  const l = await lab(['backstop_delivery_agents = 2', 'default_destination_concurrency_limit = 4', 'initial_destination_concurrency = 4', 'max_idle = 1s']);
  try {
    const before = await sentCount();
    await queueMessages(l.side, 150, 'agents');
    await l.sink.waitFor(150, 30_000);
    await until('the queue to empty', () => l.side.queue.list().length === 0);
    const ids = l.sink.messages.map((m) => m.to[0]);
    assert.equal(new Set(ids).size, 150, 'each recipient once');
    assert.equal(l.sink.messages.length, 150, 'no duplicates');
    assert.ok(l.sink.peakConnections <= 4, `peak ${l.sink.peakConnections} connections over a limit of 4`);
    // The threads' lines are in the process's maillog, with the process's pid, as smtp.
    const sent = l.lines.filter((r) => r.service === 'smtp' && /status=sent/.test(r.text));
    assert.equal(sent.length, 150);
    assert.match(sent[0].line, new RegExp(`backstop/smtp\\[${process.pid}\\]: [0-9A-F]+: to=<u\\d+@example\\.test>, relay=mx1\\.example\\.test\\[127\\.0\\.0\\.2\\]:\\d+`));
    // Their metrics are counted in this (the main) thread's registry.
    assert.equal((await sentCount()) - before, 150);
    assert.equal(l.side.agents?.running, 2, 'both threads took deliveries');
    await until('idle threads to leave (max_idle = 1s)', () => l.side.agents?.running === 0, 10_000);
    // A delivery after that starts a thread again.
    await queueMessages(l.side, 3, 'again');
    await l.sink.waitFor(153, 20_000);
  } finally {
    await l.close();
  }
});

test('a thread that dies with deliveries in hand loses nothing: they are deferred, and delivered by a new thread', { timeout: 60_000 }, async () => {
  const flag = join(tmpdir(), `backstop-agent-crash-${process.pid}`);
  writeFileSync(flag, '');
  const l = await lab(['backstop_delivery_agents = 1', 'service_throttle_time = 1s'], { BACKSTOP_FAULT_AGENT_CRASH_FILE: flag });
  try {
    await queueMessages(l.side, 5, 'crash');
    await until('the five deliveries to be deferred', () => l.side.queue.list('deferred').length === 5);
    const deferred = l.lines.filter((r) => /status=deferred \(delivery temporarily suspended: unknown mail transport error\)/.test(r.text));
    assert.equal(deferred.length, 5);
    assert.ok(l.lines.some((r) => r.severity === 'warning' && /delivery agent thread \d+ failed before its first delivery: throttling for 1s/.test(r.text)));
    assert.equal(l.sink.messages.length, 0);
    rmSync(flag);
    await sleep(1100); // the throttle
    await l.side.qmgr.flushAll();
    await l.sink.waitFor(5, 20_000);
    await until('the queue to empty', () => l.side.queue.list().length === 0);
    assert.deepEqual(l.sink.messages.map((m) => m.to[0]).sort(), [0, 1, 2, 3, 4].map((i) => `u${i}@example.test`));
  } finally {
    rmSync(flag, { force: true });
    await l.close();
  }
});
