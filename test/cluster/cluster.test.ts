// Several Backstop nodes on one PostgreSQL queue, end to end through the real `backstop start`
// (master, queue manager and smtpd workers) with backstop_queue_store = postgres:pg.cf: a real
// PostgreSQL (and a synchronous standby) started by the test on loopback, the primary MX a real
// SMTP sink on 127.0.0.2 that the test stops and starts, senders over real SMTP sessions.
// - two nodes take mail while the primary is down; node A is SIGKILLed and its folders deleted;
//   when the primary returns node B delivers every message either node acknowledged, once;
// - the same with a primary slow to greet: A dies with deliveries in flight (leases held); once
//   its leases ran out node B delivers its messages, once;
// - a node started while the database is away: 451 4.3.0, then 250 and delivery once it returns;
// - the database stopped under SMTP load: 451 4.3.0 while it is away, never a 250 for a message
//   that is not in the database, every acknowledged message delivered after it returns;
// - failover: the standby promoted under load; every message acknowledged before is there after;
// - 1,000 queued messages, two nodes (one of them in a single process), the primary back: each
//   delivered exactly once (Message-IDs counted at the sink), at most the connection limit across both;
// - ETRN on one node flushes the mail both nodes deferred.
// Needs Debian's postgresql package. Every wait is bounded.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { Maillog } from '../../src/log/index.js';
import type { Envelope } from '../../src/mail/index.js';
import { parsePgConfig, PgQueueStore } from '../../src/queue/pg/index.js';
import { children } from '../helpers/processes.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { freePort, sleep, waitFor } from '../helpers/net.js';
import { relayConfigDir, startServer, type RunningServer } from '../helpers/server.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { talk } from '../helpers/smtp-client.js';

let sinkPort: number;

before(async () => {
  sinkPort = await freePort('127.0.0.2');
});

interface Node {
  name: string;
  port: number;
  server: RunningServer;
}

/** A node: its own folder, SMTP port and node_name; the shared database; the primary at [127.0.0.2]:sinkPort. */
async function startNode(name: string, hosts: TestPostgres[], extra: string[] = []): Promise<Node> {
  const port = await freePort();
  const pgcf = hosts[0].configText(`node_name = ${name}\nconnect_timeout = 2s\nquery_timeout = 5s\npool_size = 8\n`)
    .replace(/^hosts = .*$/m, `hosts = ${hosts.map((h) => `127.0.0.1:${h.port}`).join(' ')}`);
  const dir = relayConfigDir(port, sinkPort, {
    extra: [
      'backstop_queue_store = postgres:pg.cf',
      'backstop_queue_lease_time = 3s',
      'backstop_destination_probe_interval = 1s',
      'minimal_backoff_time = 300s',
      ...extra,
    ],
    files: { 'pg.cf': pgcf },
  });
  const server = await startServer(dir, port, '127.0.0.1', 30_000);
  return { name, port, server };
}

async function stopNode(n: Node | undefined): Promise<void> {
  if (!n) return;
  await n.server.stop();
  n.server.cleanup();
}

interface Sent {
  code: number;
  mid: string;
  queueId?: string;
  reply: string;
}

let seq = 0;

/** One message in one session; the DATA reply (or the first refusal), with the Message-ID it carried. */
async function send(port: number, tag: string): Promise<Sent> {
  const mid = `${tag}.${++seq}.${process.pid}@client.test`;
  let s;
  try {
    s = await talk(port, '127.0.0.1', 20_000);
  } catch (err) {
    return { code: 0, mid, reply: (err as Error).message };
  }
  try {
    await s.cmd('EHLO client.test');
    for (const line of ['MAIL FROM:<a@sender.test>', `RCPT TO:<u@relay.test>`, 'DATA']) {
      const r = await s.cmd(line);
      if (!/^[23]/.test(r)) return { code: Number(r.slice(0, 3)), mid, reply: r };
    }
    const d = await s.data(`Subject: ${tag}\r\nMessage-ID: <${mid}>\r\n\r\nbody\r\n`);
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(d);
    return { code: Number(d.slice(0, 3)), mid, queueId: m?.[1], reply: d };
  } catch (err) {
    return { code: 0, mid, reply: (err as Error).message };
  } finally {
    s.close();
  }
}

/** `sessions` senders in parallel, each sending until `stop()` says so (bounded by `max` each). */
async function load(port: number, tag: string, sessions: number, stop: () => boolean, max = 500): Promise<Sent[]> {
  const out: Sent[] = [];
  await Promise.all(
    Array.from({ length: sessions }, async () => {
      for (let i = 0; i < max && !stop(); i++) out.push(await send(port, tag));
    }),
  );
  return out;
}

function midsAt(sink: Sink): string[] {
  return sink.messages.map((m) => /^Message-ID: <([^>]+)>/im.exec(m.raw.toString())?.[1] ?? '?');
}

async function rowCount(db: TestPostgres): Promise<number> {
  return Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM backstop.messages'))[0].n);
}

/** The queue is empty, every message of `sent` reached `sink` once, and node B's queue manager removed mail. */
async function deliveredOnce(db: TestPostgres, sink: Sink, sent: Sent[], why: string, logB: string): Promise<void> {
  await waitFor(async () => (await rowCount(db)) === 0, 15_000, 'the queue empty');
  const got = midsAt(sink);
  for (const s of sent) assert.ok(got.includes(s.mid), `${s.queueId} (${s.mid}) delivered`);
  assert.equal(got.length, sent.length, why);
  assert.match(logB, /backstop\/qmgr\[\d+\]: [0-9A-F]+: removed/);
}

/** After a test: node A (if still there) killed, node B stopped, the sink and the database gone. */
async function teardown(a: Node | undefined, b: Node | undefined, sink: Sink | undefined, db: TestPostgres): Promise<void> {
  if (a) {
    killNode(a);
    a.server.cleanup();
  }
  await stopNode(b);
  await sink?.close();
  db.remove();
}

/** SIGKILL a node's master and every worker at once: nothing of it runs on. */
function killNode(n: Node): void {
  const master = n.server.child.pid!;
  for (const pid of [...children(master), master]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

test('two nodes, primary down; node A SIGKILLed and its folders deleted; node B delivers everything A acknowledged', { timeout: 120_000 }, async () => {
  const db = await startPostgres();
  let a: Node | undefined;
  let b: Node | undefined;
  let sink: Sink | undefined;
  try {
    a = await startNode('node-a', [db]);
    b = await startNode('node-b', [db]);
    const sent = [
      ...(await Promise.all(Array.from({ length: 15 }, () => send(a!.port, 'a')))),
      ...(await Promise.all(Array.from({ length: 15 }, () => send(b!.port, 'b')))),
    ];
    for (const s of sent) assert.equal(s.code, 250, `${s.reply}\n${a.server.log().slice(-3000)}\n${b.server.log().slice(-3000)}`);
    // Both queue managers tried (primary down) and deferred what they claimed.
    await waitFor(async () => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM backstop.messages WHERE attempts > 0`))[0].n) === 30, 20_000, 'every message tried once');
    killNode(a);
    await a.server.exited;
    rmSync(a.server.dir, { recursive: true, force: true });
    a = undefined;

    sink = await startSink({ host: '127.0.0.2', port: sinkPort });
    // B's destination watch sees the primary answer and makes every node's deferred mail due.
    await sink.waitFor(30, 30_000);
    await deliveredOnce(db, sink, sent, 'none twice: nothing was in flight when A died', b.server.log());
  } finally {
    await teardown(a as Node | undefined, b, sink, db);
  }
});

test('two nodes, a primary slow to greet; node A SIGKILLed with deliveries in flight: its leases run out and node B delivers its messages, once', { timeout: 120_000 }, async () => {
  const db = await startPostgres();
  let a: Node | undefined;
  let b: Node | undefined;
  let sink: Sink | undefined;
  // The primary greets only after 4 s: deliveries stay in flight, leases held.
  const slow = await startSink({ host: '127.0.0.2', port: sinkPort, delayMs: 4000 });
  sink = slow;
  try {
    a = await startNode('node-a', [db]);
    b = await startNode('node-b', [db]);
    const sent = [
      ...(await Promise.all(Array.from({ length: 15 }, () => send(a!.port, 'a')))),
      ...(await Promise.all(Array.from({ length: 15 }, () => send(b!.port, 'b')))),
    ];
    for (const s of sent) assert.equal(s.code, 250, `${s.reply}\n${a.server.log().slice(-3000)}\n${b.server.log().slice(-3000)}`);
    await waitFor(async () => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM backstop.messages WHERE lease_node = 'node-a'`))[0].n) > 0 && slow.connections > 0, 10_000, 'A delivering');
    const heldByA = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM backstop.messages WHERE lease_node = 'node-a' AND lease_until > now()`))[0].n);
    assert.ok(heldByA > 0, 'A holds leases when it dies');
    killNode(a);
    await a.server.exited;
    rmSync(a.server.dir, { recursive: true, force: true });
    a = undefined;

    // B's deliveries go through once greeted; A's leases run out (3 s) and B claims and delivers them.
    try {
      await slow.waitFor(30, 40_000);
    } catch (err) {
      const rows = await db.query('SELECT id, queue, attempts, lease_node, lease_until, next_attempt, now() FROM backstop.messages');
      throw new Error(`${(err as Error).message}\n${JSON.stringify(rows)}\n${b.server.log().split('\n').filter((l) => !/connect from|disconnect from|client=|message-id=|queued as|from=</.test(l)).slice(-80).join('\n')}`);
    }
    await deliveredOnce(db, slow, sent, 'none twice: A\'s deliveries in flight never reached DATA', b.server.log());
  } finally {
    await teardown(a as Node | undefined, b, sink, db);
  }
});

test('the database stopped under SMTP load: 451 4.3.0 while it is away, never a 250 without a commit, all delivered after', { timeout: 120_000 }, async () => {
  const db = await startPostgres();
  const sink = await startSink({ host: '127.0.0.2', port: sinkPort });
  let node: Node | undefined;
  try {
    node = await startNode('solo', [db]);
    let done = false;
    const running = load(node.port, 'load', 4, () => done);
    await sleep(1500);
    db.stop();
    await sleep(3000);
    db.start();
    await sleep(2500);
    done = true;
    const sent = await running;
    const acked = sent.filter((s) => s.code === 250);
    const refused = sent.filter((s) => s.code !== 250);
    assert.ok(acked.length > 10, `mail accepted before and after (${acked.length})`);
    assert.ok(refused.some((s) => /^451 4\.3\.0/.test(s.reply)), `451 4.3.0 while the database was away: ${refused.slice(0, 3).map((s) => s.reply).join(' | ')}`);
    for (const s of refused) assert.match(s.reply, /^4\d\d /, `only temporary refusals\n${node.server.log().split('\n').filter((l) => !/connect from|disconnect from|client=|message-id=|queued as|from=</.test(l)).slice(-60).join('\n')}`);
    await waitFor(() => acked.every((s) => midsAt(sink).includes(s.mid)), 30_000, 'every acknowledged message delivered');
    await waitFor(async () => (await rowCount(db)) === 0, 15_000, 'the queue empty');
    const got = midsAt(sink);
    // A refused message may exist (a COMMIT whose answer was lost): it is delivered, never an acknowledged one lost.
    assert.ok(got.length >= acked.length);
    const log = node.server.log();
    const down = log.match(/warning: queue database unavailable/g)?.length ?? 0;
    assert.ok(down >= 1 && down <= 3, `the outage logged once per process (master's workers: 2 smtpd + qmgr), saw ${down}`);
    assert.match(log, /queue database available again/);
  } finally {
    await teardown(undefined, node, sink, db);
  }
});

test('a node started while the database is away: it starts, answers 451 4.3.0, and takes and delivers mail once the database returns', { timeout: 120_000 }, async () => {
  const db = await startPostgres();
  db.stop();
  const sink = await startSink({ host: '127.0.0.2', port: sinkPort });
  let node: Node | undefined;
  try {
    node = await startNode('early', [db]);
    const refused = await send(node.port, 'early');
    assert.match(refused.reply, /^451 4\.3\.0 /);
    db.start();
    const ok = await waitFor(async () => {
      const r = await send(node!.port, 'back');
      return r.code === 250 ? r : null;
    }, 20_000, 'a 250 once the database is back', 500);
    await sink.waitFor(1, 20_000);
    assert.ok(midsAt(sink).includes(ok.mid));
    assert.ok(!midsAt(sink).includes(refused.mid), 'the refused message was not kept');
    const count = (re: RegExp) => node!.server.log().match(re)?.length ?? 0;
    const down = count(/warning: queue database unavailable/g);
    assert.ok(down >= 1 && down <= 3, `once per process (2 smtpd workers, the queue manager), saw ${down}:\n${node.server.log().split('\n').filter((l) => /database|master/.test(l)).join('\n')}`);
    // Each process notices the return on its own next attempt (its retry timer, or its next message).
    await waitFor(() => count(/queue database available again/g) >= down, 10_000, 'the end of the outage logged by every process that logged its start');
    await sleep(500);
    assert.equal(count(/queue database available again/g), down, 'and its end once each');
  } finally {
    await teardown(undefined, node, sink, db);
  }
});

test('failover: the synchronous standby promoted under load; nothing acknowledged before is missing after', { timeout: 150_000 }, async () => {
  const primary = await startPostgres();
  const standby = await primary.standby('sb1');
  await primary.makeSynchronous('sb1');
  let node: Node | undefined;
  let sink: Sink | undefined;
  try {
    node = await startNode('ha', [primary, standby]);
    let done = false;
    const running = load(node.port, 'ha', 4, () => done);
    await sleep(2000);
    // The primary's machine is lost; the standby is promoted; the node finds it (hosts in order).
    primary.stop();
    standby.promote();
    await sleep(3000);
    done = true;
    const sent = await running;
    const acked = sent.filter((s) => s.code === 250);
    assert.ok(acked.length > 10, `accepted (${acked.length})`);
    const after = new Set((await standby.query<{ m: string }>('SELECT message_id AS m FROM backstop.messages')).map((r) => r.m));
    const missing = acked.filter((s) => !after.has(`<${s.mid}>`) && !after.has(s.mid));
    assert.deepEqual(missing.map((s) => s.queueId), [], 'every acknowledged message is on the promoted server');
    // Accepted after the failover too: the node reconnected by itself.
    const later = await send(node.port, 'after');
    assert.equal(later.code, 250, later.reply);
    sink = await startSink({ host: '127.0.0.2', port: sinkPort });
    try {
      await waitFor(() => [...acked, later].every((s) => midsAt(sink!).includes(s.mid)), 40_000, 'every acknowledged message delivered');
    } catch (err) {
      const rows = await standby.query('SELECT id, queue, attempts, lease_node, lease_until, next_attempt, state FROM backstop.messages LIMIT 5');
      throw new Error(`${(err as Error).message}\n${JSON.stringify(rows)}\n${node.server.log().split('\n').filter((l) => !/connect from|disconnect from|client=|message-id=|queued as|from=</.test(l)).slice(-80).join('\n')}`);
    }
  } finally {
    await stopNode(node);
    await sink?.close();
    standby.remove();
    primary.remove();
  }
});

test('ETRN on one node flushes the whole cluster: the mail both nodes deferred goes out at once', { timeout: 120_000 }, async () => {
  const db = await startPostgres();
  let a: Node | undefined;
  let b: Node | undefined;
  let sink: Sink | undefined;
  try {
    // No destination watch to flush by itself within the test: only ETRN can.
    const quiet = ['backstop_destination_probe_interval = 3600s'];
    a = await startNode('etrn-a', [db], quiet);
    b = await startNode('etrn-b', [db], quiet);
    const sent = [
      ...(await Promise.all(Array.from({ length: 6 }, () => send(a!.port, 'etrn-a')))),
      ...(await Promise.all(Array.from({ length: 6 }, () => send(b!.port, 'etrn-b')))),
    ];
    for (const s of sent) assert.equal(s.code, 250, s.reply);
    await waitFor(async () => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM backstop.messages WHERE attempts > 0 AND lease_node IS NULL`))[0].n) === 12, 30_000, 'all 12 deferred');
    sink = await startSink({ host: '127.0.0.2', port: sinkPort });
    await sleep(2000);
    assert.equal(sink.messages.length, 0, 'nothing is retried before its time');
    const s = await talk(b.port, '127.0.0.1', 10_000);
    try {
      await s.cmd('EHLO client.test');
      assert.equal(await s.cmd('ETRN relay.test'), '250 Queuing started');
    } finally {
      s.close();
    }
    await sink.waitFor(12, 30_000);
    await waitFor(async () => (await rowCount(db)) === 0, 15_000, 'the queue empty');
    const got = midsAt(sink);
    for (const m of sent) assert.ok(got.includes(m.mid), `${m.queueId} delivered`);
    assert.equal(got.length, 12, 'none twice');
  } finally {
    await stopNode(a);
    await teardown(undefined, b, sink, db);
  }
});

test('1,000 queued messages, two nodes, the primary back: each delivered exactly once, the connection limit held across both nodes', { timeout: 150_000 }, async () => {
  const db = await startPostgres();
  let a: Node | undefined;
  let b: Node | undefined;
  let sink: Sink | undefined;
  const log = new Maillog();
  log.open(undefined, { quiet: true });
  // Queued as smtpd queues them (the store's transaction), 1,000 at once without 1,000 sessions.
  const store = await PgQueueStore.open({ config: parsePgConfig('pg.cf', db.configText('pool_size = 5\n')), nodeName: 'loader', slot: 1, maillog: log });
  try {
    const mids: string[] = [];
    const env: Envelope = { sender: 'a@sender.test', recipients: [{ address: 'u@relay.test' }], client: { name: 'client.test', address: '127.0.0.9', helo: 'client.test', protocol: 'ESMTP' }, arrivalTime: Date.now() };
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, async (_, k) => {
        const mid = `bulk.${i + k}@client.test`;
        mids.push(mid);
        const tx = store.begin(env);
        await tx.write([Buffer.from(`Subject: bulk\r\nMessage-ID: <${mid}>\r\n\r\nbody ${i + k}\r\n`)]);
        await tx.commit();
      }));
    }
    const limit = ['smtp_destination_concurrency_limit = 5', 'initial_destination_concurrency = 5'];
    a = await startNode('bulk-a', [db], limit);
    // Node B runs in one process (backstop_single_process): the same queue side, smtpd wired directly.
    b = await startNode('bulk-b', [db], [...limit, 'backstop_single_process = yes']);
    // Both try, find the primary down and defer (the dead list spares the other messages a connection).
    await waitFor(async () => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM backstop.messages WHERE attempts > 0 AND lease_node IS NULL`))[0].n) === 1000, 60_000, 'all 1,000 deferred');
    sink = await startSink({ host: '127.0.0.2', port: sinkPort });
    await sink.waitFor(1000, 60_000);
    await waitFor(async () => (await rowCount(db)) === 0, 20_000, 'the queue empty');
    await sleep(500);
    const got = midsAt(sink);
    assert.equal(new Set(got).size, 1000, 'every message');
    assert.equal(got.length, 1000, 'none twice');
    for (const mid of mids) assert.ok(got.includes(mid));
    const sentBy = (n: Node) => n.server.log().match(/backstop\/smtp\[\d+\]: [0-9A-F]+: to=<u@relay\.test>.*status=sent/g)?.length ?? 0;
    assert.equal(sentBy(a) + sentBy(b), 1000);
    assert.ok(sentBy(a) > 0 && sentBy(b) > 0, `both nodes delivered (${sentBy(a)}/${sentBy(b)})`);
    // The nodes' connections hold slots shared through the database: 5 across both, not 5 each.
    assert.ok(sink.peakConnections <= 5, `at most 5 connections at once across both nodes, saw ${sink.peakConnections}`);
  } finally {
    await store.close();
    await stopNode(a);
    await teardown(undefined, b, sink, db);
  }
});

