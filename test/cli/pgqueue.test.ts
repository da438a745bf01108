// mailq, postqueue and postsuper as processes (bin/backstop.js) on a PostgreSQL queue
// (backstop_queue_store = postgres:FILE), with no server running: they act on the whole cluster's
// queue in the database — messages accepted by two nodes, one of them leased by another node —
// in Postfix's formats plus the lease holder; postsuper's deletion and hold win over the holder's
// late result; postqueue -f / -s make deferred mail due and NOTIFY the queue managers; an
// unreachable database, a database no node has opened and a bad store setting are one-line
// fatal errors. Needs Debian's postgresql package.

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { claimDue, connectPrimary, finishAttempt, parsePgConfig, PgQueueStore, FLUSH_CHANNEL, type PgConfig } from '../../src/queue/pg/index.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { runCli } from '../helpers/cli.js';
import { makeConfigDir } from '../helpers/server.js';
import { freePort, waitFor } from '../helpers/net.js';
import { envelope, message, quietLog } from '../queue/helpers.js';

let db: TestPostgres;
let cfg: PgConfig;
let nodeA: PgQueueStore;
let nodeB: PgQueueStore;
let admin: pg.Client;
let dir: string;

const MAIN_CF = 'myhostname = cli.example\nqueue_directory = spool\nmaillog_file = /dev/null\nfast_flush_domains = eligible.test\nbackstop_queue_store = postgres:queue-pg.cf\n';

before(async () => {
  db = await startPostgres();
  cfg = parsePgConfig('t.cf', db.configText());
  const { log } = quietLog();
  nodeA = await PgQueueStore.open({ config: cfg, nodeName: 'node-a', slot: 1, maillog: log });
  nodeB = await PgQueueStore.open({ config: cfg, nodeName: 'node-b', slot: 1, maillog: log });
  admin = await connectPrimary(cfg);
  dir = makeConfigDir({ 'main.cf': MAIN_CF, 'queue-pg.cf': db.configText() });
});
after(async () => {
  await admin?.end();
  await nodeA?.close();
  await nodeB?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  db?.remove();
});
beforeEach(async () => {
  await db.query('DELETE FROM backstop.messages');
});

async function put(store: PgQueueStore, queue: 'active' | 'deferred' | 'hold', rcpt = 'user@primary.test'): Promise<string> {
  const tx = store.begin(envelope({ recipients: [{ address: rcpt }] }));
  await tx.write([message()]);
  const id = await tx.commit({ queue });
  if (queue === 'deferred') await db.query(`UPDATE backstop.messages SET next_attempt = now() + interval '1 hour' WHERE id = $1`, [id]);
  return id;
}

/** node-c claims `id` (made due for it) and nothing else: node-c now delivers it. */
async function leaseToC(id: string): Promise<void> {
  await db.query('UPDATE backstop.messages SET next_attempt = now() WHERE id = $1', [id]);
  const got = await claimDue(admin, 'node-c', { batch: 100, leaseMs: 60_000 });
  assert.ok(got.some((m) => m.id === id));
  await db.query(`UPDATE backstop.messages SET lease_node = NULL, lease_until = NULL WHERE id <> $1`, [id]);
}

const cli = (...args: string[]) => runCli([...args, '-c', dir], { timeoutMs: 20_000 });

test('mailq, postqueue -p and -j list the messages of every node, with the node holding each lease', async () => {
  const a = await put(nodeA, 'active');
  const b = await put(nodeB, 'deferred');
  const h = await put(nodeB, 'hold');
  await leaseToC(b);

  for (const args of [['mailq'], ['postqueue', '-p']]) {
    const r = await cli(...args);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], '-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------');
    // hold, active, deferred, as Postfix orders them.
    assert.deepEqual(lines.filter((l) => /^[0-9A-Z]{10,}/.test(l)).map((l) => l.split(' ')[0]), [`${h}!`, `${a}*`, b]);
    const at = lines.findIndex((l) => l.startsWith(b));
    assert.match(lines[at + 1], /^ +\(leased by node-c until .+\)$/);
    assert.match(r.stdout, /-- \d+ Kbytes in 3 Requests\.\n$/);
  }
  const j = await cli('postqueue', '-j');
  assert.equal(j.code, 0, j.stderr);
  const rows = j.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((x) => [x.queue_id, x.queue_name, x.lease_node]), [[h, 'hold', null], [a, 'active', null], [b, 'deferred', 'node-c']]);
  assert.deepEqual(rows[1].recipients, [{ address: 'user@primary.test' }]);

  await db.query('DELETE FROM backstop.messages');
  const empty = await cli('mailq');
  assert.deepEqual([empty.code, empty.stdout], [0, 'Mail queue is empty\n']);
});

test('postsuper -d / -h on a message another node delivers: done, and that node\'s late result changes nothing; -H and -r', async () => {
  const leased = await put(nodeA, 'deferred');
  const other = await put(nodeB, 'deferred');
  const gone = await put(nodeB, 'active');
  await leaseToC(leased);

  let r = await cli('postsuper', '-h', leased);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, `postsuper: ${leased}: placed on hold\npostsuper: Placed on hold: 1 message\n`);
  assert.equal(await finishAttempt(admin, 'node-c', leased, { status: 'D' }), false);
  assert.deepEqual(await db.query('SELECT queue, lease_node FROM backstop.messages WHERE id = $1', [leased]), [{ queue: 'hold', lease_node: null }]);

  r = await cli('postsuper', '-H', leased);
  assert.equal(r.stderr, `postsuper: ${leased}: released from hold\npostsuper: Released from hold: 1 message\n`);

  await leaseToC(gone);
  r = await cli('postsuper', '-d', gone, '-d', 'NOT-AN-ID');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, `postsuper: warning: invalid mail queue id: NOT-AN-ID\npostsuper: ${gone}: removed\npostsuper: Deleted: 1 message\n`);
  assert.equal(await finishAttempt(admin, 'node-c', gone, { status: 'D' }), false, 'the deleted message stays deleted');
  assert.equal((await db.query('SELECT 1 FROM backstop.messages WHERE id = $1', [gone])).length, 0);

  // -r ALL deferred: both due now.
  r = await cli('postsuper', '-r', 'ALL', 'deferred');
  assert.equal(r.stderr, 'postsuper: Requeued: 2 messages\n');
  const due = await db.query<{ id: string }>('SELECT id FROM backstop.messages WHERE next_attempt <= now() ORDER BY id');
  assert.deepEqual(due.map((x) => x.id), [leased, other].sort());

  // Ids on standard input ("-"), as Postfix reads them.
  r = await runCli(['postsuper', '-h', '-', '-c', dir], { input: `${other}\n`, timeoutMs: 20_000 });
  assert.equal(r.stderr, `postsuper: ${other}: placed on hold\npostsuper: Placed on hold: 1 message\n`);

  r = await cli('postsuper', '-d', 'ALL');
  assert.equal(r.stderr, 'postsuper: Deleted: 2 messages\n');
  assert.equal(r.code, 0);
});

test('postqueue -f and -s: deferred mail due now, NOTIFY backstop_flush to the queue managers; -s refusals as Postfix words them', async () => {
  const listener = await connectPrimary(cfg);
  const heard: string[] = [];
  listener.on('notification', (n) => heard.push(n.payload ?? ''));
  await listener.query(`LISTEN ${FLUSH_CHANNEL}`);
  try {
    const x = await put(nodeA, 'deferred', 'u@site.test');
    const y = await put(nodeB, 'deferred', 'u@elsewhere.test');
    const due = async (id: string) => (await db.query<{ d: boolean }>('SELECT next_attempt <= now() AS d FROM backstop.messages WHERE id = $1', [id]))[0].d;

    let r = await cli('postqueue', '-s', 'site.test');
    assert.deepEqual([r.code, r.stderr], [0, '']);
    assert.equal(await due(x), true);
    assert.equal(await due(y), false);

    r = await cli('postqueue', '-s', 'nothing.test');
    assert.deepEqual([r.code, r.stderr], [69, 'postqueue: fatal: Flush service is not configured for destination "nothing.test"\n']);
    r = await cli('postqueue', '-s', 'eligible.test');
    assert.deepEqual([r.code, r.stderr], [0, ''], 'fast_flush_domains');
    r = await cli('postqueue', '-s', 'a@b.test');
    assert.deepEqual([r.code, r.stderr], [64, 'postqueue: fatal: Invalid request: "a@b.test"\n']);

    r = await cli('postqueue', '-f');
    assert.deepEqual([r.code, r.stderr], [0, '']);
    assert.equal(await due(y), true);
    await waitFor(() => heard.length === 3, 3000, 'three notifications');
    assert.deepEqual(heard, ['site.test', 'eligible.test', '']);
  } finally {
    await listener.end();
  }
});

test('an unreachable database, one no node has opened, a bad store setting: one line each, no stack trace', async () => {
  const port = await freePort();
  const down = makeConfigDir({ 'main.cf': MAIN_CF, 'queue-pg.cf': db.configText().replace(/^hosts = .*$/m, `hosts = 127.0.0.1:${port}`).replace('connect_timeout = 2s', 'connect_timeout = 1s') });
  await db.query('CREATE DATABASE fresh');
  const fresh = makeConfigDir({ 'main.cf': MAIN_CF, 'queue-pg.cf': db.configText().replace(/^dbname = .*$/m, 'dbname = fresh') });
  const bad = makeConfigDir({ 'main.cf': MAIN_CF.replace('postgres:queue-pg.cf', 'mysql:x.cf') });
  const missing = makeConfigDir({ 'main.cf': MAIN_CF });
  try {
    const run = (d: string, ...args: string[]) => runCli([...args, '-c', d], { timeoutMs: 20_000 });
    let r = await run(down, 'mailq');
    assert.equal(r.code, 69);
    assert.match(r.stderr, new RegExp(`^postqueue: fatal: queue database unreachable \\(127\\.0\\.0\\.1:${port}: .+\\)\\n$`));
    r = await run(down, 'postsuper', '-d', 'ALL');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^postsuper: fatal: queue database unreachable \(127\.0\.0\.1:\d+: .+\)\n$/);
    r = await run(fresh, 'postqueue', '-p');
    assert.deepEqual([r.code, r.stderr], [69, 'postqueue: fatal: the queue database has no backstop schema yet (no backstop node has opened it)\n']);
    r = await run(bad, 'mailq');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^backstop: fatal: parameter backstop_queue_store: bad value "mysql:x\.cf": expected "file" or "postgres:CONFIG_FILE"\n$/);
    r = await run(missing, 'postqueue', '-f');
    assert.equal(r.code, 69);
    assert.match(r.stderr, /^postqueue: fatal: postgres config .*queue-pg\.cf: open: No such file or directory\n$/);
    writeFileSync(join(missing, 'queue-pg.cf'), 'hosts = 127.0.0.1\nbogus = 1\n');
    r = await run(missing, 'postsuper', '-h', 'ALL');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^postsuper: fatal: .*queue-pg\.cf, line 2: unknown parameter "bogus"/);
  } finally {
    for (const d of [down, fresh, bad, missing]) rmSync(d, { recursive: true, force: true });
  }
});
