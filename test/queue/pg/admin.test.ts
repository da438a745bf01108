// The administrator's side of the PostgreSQL queue, on a real PostgreSQL started by this test:
// the cluster-wide listing (Postfix's format plus the lease holder), postsuper's operations on the
// shared rows — including a message another node holds the lease of, whose late result must then
// change nothing — and the fast flush (deferred rows due now, NOTIFY backstop_flush heard by a
// listener). Needs Debian's postgresql package.

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type pg from 'pg';
import {
  applyPgAdmin, claimDue, connectPrimary, finishAttempt, flushPg, listPgQueue, parsePgConfig, pgFlusher, PgQueueStore, removeLeased, FLUSH_CHANNEL, type PgConfig,
} from '../../../src/queue/pg/index.js';
import { formatJson, formatMailq } from '../../../src/queue/index.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { waitFor } from '../../helpers/net.js';
import { envelope, message, quietLog } from '../helpers.js';

let db: TestPostgres;
let cfg: PgConfig;
let store: PgQueueStore;
let admin: pg.Client;

before(async () => {
  db = await startPostgres();
  cfg = parsePgConfig('t.cf', db.configText());
  store = await PgQueueStore.open({ config: cfg, nodeName: 'node-a', slot: 1, maillog: quietLog().log });
  admin = await connectPrimary(cfg);
});
after(async () => {
  await admin?.end();
  await store?.close();
  db?.remove();
});
beforeEach(async () => {
  await db.query('DELETE FROM backstop.messages');
});

async function put(queue: 'active' | 'deferred' | 'hold', recipients = ['user@primary.test'], sender = 'sender@client.test'): Promise<string> {
  const tx = store.begin(envelope({ sender, recipients: recipients.map((address) => ({ address })) }));
  await tx.write([message('x'.repeat(100) + '\r\n')]);
  const id = await tx.commit({ queue });
  if (queue === 'deferred') await db.query(`UPDATE backstop.messages SET next_attempt = now() + interval '1 hour' WHERE id = $1`, [id]);
  return id;
}

const row = async (id: string) =>
  (await db.query<{ queue: string; lease_node: string | null; due: boolean }>('SELECT queue, lease_node, next_attempt <= now() AS due FROM backstop.messages WHERE id = $1', [id]))[0];

/** Node B claims `id` (it must be due): B then holds its lease. */
async function leaseToB(id: string): Promise<void> {
  await db.query('UPDATE backstop.messages SET next_attempt = now() WHERE id = $1', [id]);
  const got = await claimDue(admin, 'node-b', { batch: 100, leaseMs: 60_000 });
  assert.ok(got.some((m) => m.id === id), 'B claimed it');
  // Only that one: B gives back whatever else was due.
  await db.query(`UPDATE backstop.messages SET lease_node = NULL, lease_until = NULL WHERE id <> $1 AND lease_node = 'node-b'`, [id]);
}

test('listing: hold, active, deferred in order; pending recipients only; the lease holder in the listing and in JSON', async () => {
  const held = await put('hold', ['h@primary.test'], '');
  const active = await put('active', ['a1@primary.test', 'a2@primary.test']);
  const deferred = await put('deferred');
  await db.query(`UPDATE backstop.messages SET status = 'DP' WHERE id = $1`, [active]);
  await leaseToB(deferred);

  const list = await listPgQueue(admin);
  assert.deepEqual(list.map((m) => [m.queueName, m.queueId]), [['hold', held], ['active', active], ['deferred', deferred]]);
  assert.deepEqual(list[1].recipients, [{ address: 'a2@primary.test', delayReason: '' }]);
  assert.equal(list[0].lease, null);
  assert.equal(list[2].lease?.node, 'node-b');
  assert.ok(list.every((m) => m.messageSize > 100));

  const text = formatMailq(list);
  const lines = text.split('\n');
  // The Postfix sender lines, unchanged: ID with its flag, size, arrival time, sender.
  assert.match(lines[1], new RegExp(`^${held}!\\s+\\d+ \\w{3} \\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d  MAILER-DAEMON$`));
  assert.match(text, new RegExp(`^${active}\\*\\s+\\d+ .* sender@client\\.test\\n\\s+a2@primary\\.test\\n`, 'm'));
  // The lease: a parenthesized line after the sender line, ending at column 78 as a reason does.
  const at = lines.findIndex((l) => l.startsWith(deferred));
  assert.match(lines[at + 1], /^ +\(leased by node-b until \w{3} [ \d]\d \d\d:\d\d:\d\d\)$/);
  assert.equal(lines[at + 1].length, 78);
  assert.match(lines[at + 2], /^\s+user@primary\.test$/);
  assert.match(text, /-- \d+ Kbytes in 3 Requests\.\n$/);

  const json = formatJson(list).trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(json.map((j) => [j.queue_id, j.lease_node]), [[held, null], [active, null], [deferred, 'node-b']]);
  assert.equal(typeof json[2].lease_until, 'number');
  assert.equal(json[0].lease_until, null);
  assert.deepEqual(Object.keys(json[0]), ['queue_name', 'queue_id', 'arrival_time', 'message_size', 'forced_expire', 'sender', 'recipients', 'lease_node', 'lease_until']);

  // A lease that ran out is nobody's.
  await db.query(`UPDATE backstop.messages SET lease_until = now() - interval '1 second' WHERE id = $1`, [deferred]);
  assert.equal((await listPgQueue(admin)).find((m) => m.queueId === deferred)?.lease, null);
  // Only the queues asked for.
  assert.deepEqual((await listPgQueue(admin, ['deferred'])).map((m) => m.queueId), [deferred]);
});

test('postsuper -d: by id (one leased by another node: its late result changes nothing) and ALL per queue; content goes too', async () => {
  const a = await put('active');
  const leased = await put('deferred');
  const other = await put('deferred');
  const held = await put('hold');
  await leaseToB(leased);

  const r = await applyPgAdmin(admin, 'delete', { ids: [leased, 'NOTANID!', a, a] });
  assert.deepEqual(r, { ids: [leased, a], count: 2 });
  assert.equal(await finishAttempt(admin, 'node-b', leased, { status: 'D' }), false, "the holder's result is refused");
  assert.equal(await removeLeased(admin, 'node-b', leased), false);
  assert.equal((await db.query('SELECT 1 FROM backstop.content WHERE message = $1', [leased])).length, 0);

  // ALL limited to hold: the deferred one stays.
  assert.deepEqual(await applyPgAdmin(admin, 'delete', { ids: 'ALL', queues: ['hold'] }), { ids: [held], count: 1 });
  assert.ok(await row(other));
  // Queues a PostgreSQL queue does not have hold nothing.
  assert.deepEqual(await applyPgAdmin(admin, 'delete', { ids: 'ALL', queues: ['corrupt', 'incoming'] }), { ids: [], count: 0 });
  assert.deepEqual(await applyPgAdmin(admin, 'delete', { ids: 'ALL' }), { ids: [other], count: 1 });
});

test('postsuper -h / -H / -r: a held leased message loses its lease and is never claimed; release and requeue make it deliverable', async () => {
  const leased = await put('deferred');
  const plain = await put('active');
  await leaseToB(leased);

  // -H looks only in hold by default: nothing to release yet.
  assert.deepEqual(await applyPgAdmin(admin, 'release', { ids: [leased] }), { ids: [], count: 0 });
  assert.deepEqual(await applyPgAdmin(admin, 'hold', { ids: [leased, plain] }), { ids: [leased, plain], count: 2 });
  assert.deepEqual(await row(leased), { queue: 'hold', lease_node: null, due: true });
  assert.equal(await finishAttempt(admin, 'node-b', leased, { status: 'P', nextAttempt: new Date(Date.now() + 60_000) }), false, "the holder's late deferral changes nothing");
  assert.equal((await row(leased)).queue, 'hold');
  assert.deepEqual(await claimDue(admin, 'node-c', { batch: 100, leaseMs: 60_000 }), [], 'held mail is not claimed');
  // Already held: -h again changes nothing; -h limited to active finds nothing.
  assert.deepEqual(await applyPgAdmin(admin, 'hold', { ids: 'ALL' }), { ids: [], count: 0 });

  assert.deepEqual(await applyPgAdmin(admin, 'release', { ids: [leased] }), { ids: [leased], count: 1 });
  assert.equal((await row(leased)).queue, 'deferred');

  // -r: due now in deferred (held mail too), lease cleared even when another node holds it.
  await db.query(`UPDATE backstop.messages SET next_attempt = now() + interval '1 hour' WHERE id = $1`, [leased]);
  const other = await put('deferred');
  await leaseToB(other);
  const r = await applyPgAdmin(admin, 'requeue', { ids: 'ALL' });
  assert.deepEqual(r.ids, [leased, plain, other].sort());
  for (const id of [leased, plain, other]) assert.deepEqual(await row(id), { queue: 'deferred', lease_node: null, due: true });
  assert.equal(await finishAttempt(admin, 'node-b', other, { status: 'D' }), false);
  const claimed = await claimDue(admin, 'node-c', { batch: 100, leaseMs: 60_000 });
  assert.deepEqual(claimed.map((m) => m.id).sort(), [leased, plain, other].sort());
});

test('flush: postqueue -f makes every deferred message due and notifies ""; -s / ETRN only the domain\'s, notifying the domain', async () => {
  const listener = await connectPrimary(cfg);
  const heard: string[] = [];
  listener.on('notification', (n) => n.channel === FLUSH_CHANNEL && heard.push(n.payload ?? ''));
  await listener.query(`LISTEN ${FLUSH_CHANNEL}`);
  try {
    const one = await put('deferred', ['x@one.test']);
    const two = await put('deferred', ['y@Two.Test.']);
    const done = await put('deferred', ['z@three.test', 'w@other.test']);
    await db.query(`UPDATE backstop.messages SET status = 'DP' WHERE id = $1`, [done]);

    assert.deepEqual(await flushPg(admin, 'two.test'), { status: 'ok', flushed: 1 });
    assert.equal((await row(two)).due, true);
    assert.equal((await row(one)).due, false);
    await waitFor(() => heard.length === 1, 2000, 'the notification for two.test');
    assert.deepEqual(heard, ['two.test']);

    // three.test's only recipient is delivered: no mail for it; not eligible → deny, no notification.
    assert.deepEqual(await flushPg(admin, 'three.test'), { status: 'deny', flushed: 0 });
    // Eligible (fast_flush_domains): ok with nothing to flush, and notified.
    assert.deepEqual(await flushPg(admin, 'three.test', (d) => d === 'three.test'), { status: 'ok', flushed: 0 });
    assert.deepEqual(await flushPg(admin, 'bad site'), { status: 'bad', flushed: 0 });
    assert.deepEqual(await flushPg(admin, 'a@b'), { status: 'bad', flushed: 0 });
    // Mail for the domain in another queue makes it eligible, though nothing deferred moves.
    await put('hold', ['q@held.test']);
    assert.deepEqual(await flushPg(admin, 'held.test'), { status: 'ok', flushed: 0 });

    assert.deepEqual(await flushPg(admin), { status: 'ok', flushed: 3 });
    for (const id of [one, two, done]) assert.equal((await row(id)).due, true);
    await waitFor(() => heard.length === 4, 2000, 'all notifications');
    assert.deepEqual(heard, ['two.test', 'three.test', 'held.test', '']);

    // smtpd's ETRN through the store's pool.
    const etrn = pgFlusher(() => store.connect(), () => false);
    assert.equal(await etrn.flushDomain('one.test'), true);
    assert.equal(await etrn.flushDomain('nowhere.test'), false);
    await waitFor(() => heard.length === 5, 2000, 'the ETRN notification');
    assert.equal(heard[4], 'one.test');
  } finally {
    await listener.end();
  }
});
