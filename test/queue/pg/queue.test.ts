// The queue manager on the shared PostgreSQL queue (PgQueue + the real Qmgr and SMTP client), on a
// real PostgreSQL, a real DNS server and a real SMTP sink as the primary on 127.0.0.2: one node
// delivers what smtpd committed and removes the rows; two nodes split a backlog with every message
// delivered once and the connections within a shared slot limit; a dead node's leases run out and
// the other node delivers its messages; deferred mail keeps its reason and attempt count in the
// database; a bounce's notice is queued through the database and delivered to the sender, the
// delivered recipient never sent twice; the destination watch on one node flushes the domain on
// every node; a node started while the database is away delivers once it returns, logging the
// outage once each way.
// Needs Debian's postgresql.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Maillog } from '../../../src/log/index.js';
import { Resolver } from '../../../src/dns/index.js';
import { ConnectionCache, type ConnectionSlots, type DeliveryOptions } from '../../../src/smtp/index.js';
import { createQmgr, createNoticeBuilder, type Qmgr, type QmgrParams } from '../../../src/qmgr/index.js';
import { claimDue, finishAttempt, releaseLeases, parsePgConfig, PgQueue, PgQueueStore, type PgConfig } from '../../../src/queue/pg/index.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { startDnsServer, type TestDnsServer } from '../../helpers/dnsserver.js';
import { startSink, type Sink } from '../../helpers/sink.js';
import { freePort, sleep, waitFor } from '../../helpers/net.js';
import { ZONE, envelope } from '../../qmgr/harness.js';

let db: TestPostgres;
let dns: TestDnsServer;
let port: number;
let cfg: PgConfig;
let writer: PgQueueStore;

before(async () => {
  db = await startPostgres();
  dns = await startDnsServer(ZONE);
  port = await freePort('127.0.0.2', '127.0.0.3');
  cfg = parsePgConfig('t.cf', db.configText('pool_size = 5\nconnect_timeout = 2s\nquery_timeout = 5s\n'));
  writer = await PgQueueStore.open({ config: cfg, nodeName: 'smtpd', slot: 1, maillog: logOf().log });
});
after(async () => {
  await writer?.close();
  await dns?.close();
  db?.remove();
});

function logOf(): { log: Maillog; lines: string[] } {
  const log = new Maillog();
  log.open(undefined, { quiet: true });
  const lines: string[] = [];
  log.addSink((r) => lines.push(`${r.service}: ${r.text}`));
  return { log, lines };
}

interface Node {
  queue: PgQueue;
  qmgr: Qmgr;
  lines: string[];
  stop(): Promise<void>;
}

async function startNode(name: string, opts: { leaseMs?: number; params?: Partial<QmgrParams>; slots?: ConnectionSlots; maxHeld?: number; pollMs?: number } = {}): Promise<Node> {
  const { log, lines } = logOf();
  const queue = PgQueue.open({ config: cfg, nodeName: name, dir: '/nonexistent', leaseMs: opts.leaseMs ?? 30_000, pollMs: opts.pollMs ?? 200, maxHeld: opts.maxHeld, maillog: log });
  const delivery: DeliveryOptions = {
    dns: new Resolver({ servers: [dns.servers], timeoutMs: 2000, cacheSize: 0 }),
    isSelf: () => false,
    defaultPort: port,
    session: { heloName: `${name}.test`, timeouts: { smtp_connect_timeout: 2, smtp_helo_timeout: 5, smtp_mail_timeout: 5, smtp_rcpt_timeout: 5, smtp_data_init_timeout: 5, smtp_data_xfer_timeout: 5, smtp_data_done_timeout: 5, smtp_rset_timeout: 5, smtp_quit_timeout: 2 } },
    cache: new ConnectionCache({ idleSeconds: 1 }),
    // Shared slots are held per connection, cached idle ones included (docs/cluster.md).
    slots: opts.slots,
    slotLimit: opts.params?.default_destination_concurrency_limit,
    logger: log.logger('smtp'),
  };
  const qmgr = createQmgr({
    queue,
    delivery,
    notices: createNoticeBuilder({ myhostname: `${name}.test`, log: log.logger('bounce') }),
    params: { backstop_destination_probe_interval: 1, ...opts.params },
    log: log.logger('qmgr'),
  });
  await qmgr.start();
  queue.onFlush((p) => void (p ? qmgr.flushDomain(p) : qmgr.flushAll()));
  qmgr.on('destinationUp', (domain) => void queue.flushDomainEverywhere(domain));
  return {
    queue,
    qmgr,
    lines,
    async stop() {
      await qmgr.stop(5000);
      await queue.close();
    },
  };
}

async function put(n: number, rcpts = ['user@example.test']): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const tx = writer.begin(envelope('sender@sender.test', rcpts));
    await tx.write([Buffer.from(`Subject: m\r\nMessage-ID: <m${i}.${Date.now()}@client.test>\r\n\r\nbody ${i}\r\n`)]);
    ids.push(await tx.commit());
  }
  return ids;
}

async function rows(): Promise<number> {
  return Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM backstop.messages'))[0].n);
}

function ids(sink: Sink): string[] {
  return sink.messages.map((m) => /Message-ID: <([^>]+)>/i.exec(m.raw.toString())![1]);
}

async function clean(): Promise<void> {
  await db.query('DELETE FROM backstop.messages');
}

test('one node delivers what smtpd committed, byte for byte, and removes the rows', async () => {
  await clean();
  const sink = await startSink({ host: '127.0.0.2', port });
  const node = await startNode('a');
  try {
    const sent = await put(10, ['user@example.test', 'other@example.test']);
    await sink.waitFor(10, 15_000);
    await waitFor(async () => (await rows()) === 0, 10_000, 'every row removed');
    assert.equal(sink.messages.length, 10);
    for (const m of sink.messages) assert.deepEqual(m.to.sort(), ['other@example.test', 'user@example.test']);
    assert.match(sink.messages[0].raw.toString(), /^Received: |^Subject: m/m);
    for (const id of sent) assert.ok(node.lines.some((l) => l.includes(`${id}: removed`)), `${id} removed`);
  } finally {
    await node.stop();
    await sink.close();
  }
});

test('primary down: the attempt is written (deferred, attempts, reason, lease given up); the watch on one node flushes the domain on both', async () => {
  await clean();
  const a = await startNode('a');
  const b = await startNode('b');
  let sink: Sink | undefined;
  try {
    await put(30);
    await waitFor(async () => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM backstop.messages WHERE queue = 'deferred' AND attempts >= 1`))[0].n) === 30, 20_000, '30 deferred rows');
    const r = await db.query<{ lease_node: string | null; state: { lastReason?: string }; next_attempt: Date }>('SELECT lease_node, state, next_attempt FROM backstop.messages');
    for (const x of r) {
      assert.equal(x.lease_node, null);
      assert.match(x.state.lastReason ?? '', /connect to|Connection refused|suspended/);
      assert.ok(x.next_attempt.getTime() > Date.now() + 60_000, 'retried after the backoff, not now');
    }
    sink = await startSink({ host: '127.0.0.2', port });
    // The watch (1 s probes) sees the primary answer: every node's deferred mail for it is due now.
    await sink.waitFor(30, 20_000);
    await waitFor(async () => (await rows()) === 0, 10_000, 'every row removed');
    const got = ids(sink);
    assert.equal(new Set(got).size, 30, 'each message once');
    assert.equal(got.length, 30);
  } finally {
    await a.stop();
    await b.stop();
    await sink?.close();
  }
});

test('two nodes, 200 messages: each delivered once, connections within the shared slot limit', async () => {
  await clean();
  const sink = await startSink({ host: '127.0.0.2', port });
  // One limit for both nodes (what part B's advisory-lock slots give across processes).
  let held = 0;
  const slots: ConnectionSlots = {
    async tryAcquire(_hop, limit) {
      if (held >= limit) return null;
      held++;
      let done = false;
      return () => {
        if (!done) held--;
        done = true;
      };
    },
  };
  const params: Partial<QmgrParams> = { default_destination_concurrency_limit: 3 };
  const a = await startNode('a', { slots, params });
  const b = await startNode('b', { slots, params });
  try {
    await put(200);
    await sink.waitFor(200, 30_000);
    await waitFor(async () => (await rows()) === 0, 10_000, 'every row removed');
    const got = ids(sink);
    assert.equal(new Set(got).size, 200);
    assert.equal(got.length, 200, 'none twice');
    const byA = a.lines.filter((l) => /status=sent/.test(l)).length;
    const byB = b.lines.filter((l) => /status=sent/.test(l)).length;
    assert.equal(byA + byB, 200);
    assert.ok(byA > 0 && byB > 0, `both nodes delivered (${byA}/${byB})`);
    assert.ok(sink.peakConnections <= 3, `at most 3 connections at once across both nodes, saw ${sink.peakConnections}`);
  } finally {
    await a.stop();
    await b.stop();
    await sink.close();
  }
});

test('a dead node: its leases run out and another node delivers its messages; its late result is refused', async () => {
  await clean();
  const sent = await put(12);
  // "Node x" claimed everything and died (no renewal, no result).
  const c = await writer.connect();
  const claimed = await claimDue(c, 'x', { batch: 100, leaseMs: 1500 });
  c.release();
  assert.equal(claimed.length, 12);
  const sink = await startSink({ host: '127.0.0.2', port });
  const b = await startNode('b', { leaseMs: 2000 });
  try {
    await sleep(500);
    assert.equal(sink.messages.length, 0, 'nothing while the lease holds');
    await sink.waitFor(12, 15_000);
    assert.deepEqual(ids(sink).sort(), [...new Set(ids(sink))].sort());
    await waitFor(async () => (await rows()) === 0, 10_000, 'every row removed');
    const late = await writer.connect();
    try {
      assert.equal(await finishAttempt(late, 'x', sent[0], { status: 'D' }), false, 'the dead node\'s late result changes nothing');
    } finally {
      late.release();
    }
  } finally {
    await b.stop();
    await sink.close();
  }
});

test('a node started while the database is away: no failure, one line each way, delivers once it returns', async () => {
  await clean();
  await put(5);
  db.stop();
  const sink = await startSink({ host: '127.0.0.2', port });
  let node: Node | undefined;
  try {
    node = await startNode('late');
    await sleep(2500);
    assert.equal(sink.messages.length, 0);
    assert.equal(node.lines.filter((l) => /queue database unavailable/.test(l)).length, 1, node.lines.join('\n'));
    db.start();
    await sink.waitFor(5, 20_000);
    await waitFor(() => node!.lines.some((l) => /queue database available again/.test(l)), 5000, 'available again');
    assert.equal(node.lines.filter((l) => /queue database unavailable/.test(l)).length, 1);
    assert.equal(node.lines.filter((l) => /available again/.test(l)).length, 1);
  } finally {
    await node?.stop();
    await sink.close();
  }
});

test('a clean stop gives its leases back (only its own): other nodes need not wait for them to run out', async () => {
  await clean();
  const sent = await put(4);
  const c = await writer.connect();
  try {
    const got = await claimDue(c, 'x', { batch: 10, leaseMs: 60_000 });
    assert.equal(got.length, 4);
    assert.equal(await releaseLeases(c, 'y', sent), 0, 'another node\'s leases are not its to give');
    assert.equal(await releaseLeases(c, 'x', sent), 4);
    const again = await claimDue(c, 'z', { batch: 10, leaseMs: 60_000 });
    assert.deepEqual(again.map((m) => m.id).sort(), [...sent].sort());
  } finally {
    c.release();
  }
});

test('a recipient refused with 550: the failure notice goes through the database to the sender; the delivered one is not sent again', async () => {
  await clean();
  const primary = await startSink({
    host: '127.0.0.2',
    port,
    rcptReply: (a) => (a.startsWith('unknown') ? { code: 550, text: '5.1.1 <unknown@example.test>: Recipient address rejected: User unknown' } : a.startsWith('later') ? { code: 450, text: '4.2.0 try later' } : undefined),
  });
  const senderMx = await startSink({ host: '127.0.0.3', port });
  const node = await startNode('a');
  try {
    const [id] = await put(1, ['user@example.test', 'unknown@example.test', 'later@example.test']);
    const [notice] = await senderMx.waitFor(1, 15_000);
    assert.deepEqual(notice.to, ['sender@sender.test']);
    assert.match(notice.raw.toString(), /unknown@example\.test/);
    assert.match(notice.raw.toString(), /5\.1\.1/);
    // The original stays for the deferred recipient, with the others' results recorded.
    const row = await waitFor(async () => (await db.query<{ status: string; queue: string; lease_node: string | null; state: { results?: Array<{ dsn?: string } | null> } }>('SELECT status, queue, lease_node, state FROM backstop.messages WHERE id = $1', [id]))[0], 10_000, 'the original row');
    await waitFor(async () => (await db.query<{ queue: string }>('SELECT queue FROM backstop.messages WHERE id = $1 AND lease_node IS NULL', [id]))[0]?.queue === 'deferred', 10_000, 'the original deferred');
    const after = (await db.query<{ status: string; state: { results?: Array<{ dsn?: string } | null> } }>('SELECT status, state FROM backstop.messages WHERE id = $1', [id]))[0];
    assert.equal(after.status, 'DBP');
    assert.equal(after.state.results?.[2]?.dsn, '4.2.0');
    assert.ok(row);
    assert.equal(primary.messages.length, 1);
    assert.deepEqual(primary.messages[0].to, ['user@example.test']);
    // The notice's row is gone (delivered); only the original remains.
    await waitFor(async () => (await rows()) === 1, 10_000, 'only the original left');
    // Retried (flush): the delivered and bounced recipients are not sent again.
    node.qmgr.flushAll();
    await waitFor(async () => Number((await db.query<{ a: number }>('SELECT attempts AS a FROM backstop.messages WHERE id = $1', [id]))[0].a) >= 2, 10_000, 'a second attempt');
    assert.equal(primary.messages.length, 1, 'nothing delivered twice');
    assert.equal(senderMx.messages.length, 1, 'one notice');
  } finally {
    await node.stop();
    await primary.close();
    await senderMx.close();
  }
});

test('a node that may hold only 5 claims more as it finishes, without waiting for its poll', async () => {
  await clean();
  const sink = await startSink({ host: '127.0.0.2', port });
  await put(30);
  // The poll is a minute away: only the first claim (at start) and the claims on finishing can drain 30.
  const node = await startNode('small', { maxHeld: 5, pollMs: 60_000 });
  try {
    await sink.waitFor(30, 15_000);
    await waitFor(async () => (await rows()) === 0, 10_000, 'every row removed');
    assert.equal(new Set(ids(sink)).size, 30);
    assert.ok(node.queue.leased <= 5);
  } finally {
    await node.stop();
    await sink.close();
  }
});

test('content being sent on holds no pooled connection: with pool_size = 1 the claim loop and smtpd still get one', async () => {
  await clean();
  const tiny = await PgQueueStore.open({ config: parsePgConfig('t.cf', db.configText('pool_size = 1\nconnect_timeout = 1s\n')), nodeName: 'tiny', slot: 2, maillog: logOf().log });
  try {
    const tx = tiny.begin(envelope('sender@sender.test', ['user@example.test']));
    await tx.write([Buffer.alloc(600_000, 0x61), Buffer.from('\r\n')]);
    const id = await tx.commit();
    const it = tiny.readContent(id)[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.done, false);
    // A slow primary: the first chunk is being sent; meanwhile another user of the pool is served.
    const c = await tiny.connect();
    c.release();
    let total = (first.value as Buffer).length;
    for (let r = await it.next(); !r.done; r = await it.next()) total += r.value.length;
    assert.equal(total, 600_002);
  } finally {
    await tiny.close();
  }
});
