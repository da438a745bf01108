// Leases on the shared queue, on a real PostgreSQL started by this test: two nodes claiming at
// once split the due messages with no overlap; hold and not-yet-due messages are never claimed;
// a lease that ran out is claimed by another node, and the first node's late result is refused
// (fencing); renewal keeps a lease; removal takes the content with it. Needs Debian's postgresql.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { PoolClient } from 'pg';
import { claimDue, finishAttempt, parsePgConfig, PgQueueStore, removeLeased, renewLeases } from '../../../src/queue/pg/index.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { sleep } from '../../helpers/net.js';
import { envelope, message, quietLog } from '../helpers.js';

let db: TestPostgres;
let store: PgQueueStore;
let a: PoolClient;
let b: PoolClient;

before(async () => {
  db = await startPostgres();
  store = await PgQueueStore.open({ config: parsePgConfig('t.cf', db.configText()), nodeName: 'node-a', slot: 1, maillog: quietLog().log });
  a = await store.connect();
  b = await store.connect();
});
after(async () => {
  a?.release();
  b?.release();
  await store?.close();
  db?.remove();
});

async function put(n: number, queue: 'active' | 'deferred' | 'hold' = 'active'): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const tx = store.begin(envelope());
    await tx.write([message(`m ${i}\r\n`)]);
    ids.push(await tx.commit({ queue }));
  }
  return ids;
}

test('two nodes claiming at once: every due message once, none twice; hold and future ones never', async () => {
  const due = await put(60);
  const held = await put(3, 'hold');
  const later = await put(3, 'deferred');
  await db.query(`UPDATE backstop.messages SET next_attempt = now() + interval '1 hour' WHERE id = ANY($1)`, [later]);
  const got: Record<string, string[]> = { A: [], B: [] };
  for (let round = 0; round < 20; round++) {
    const [ca, cb] = await Promise.all([claimDue(a, 'A', { batch: 7, leaseMs: 60_000 }), claimDue(b, 'B', { batch: 7, leaseMs: 60_000 })]);
    for (const m of [...ca, ...cb]) assert.deepEqual(m.envelope, JSON.parse(JSON.stringify(envelope())));
    got.A.push(...ca.map((m) => m.id));
    got.B.push(...cb.map((m) => m.id));
    if (ca.length === 0 && cb.length === 0) break;
  }
  const all = [...got.A, ...got.B];
  assert.equal(new Set(all).size, all.length, 'no message claimed twice');
  assert.deepEqual([...all].sort(), [...due].sort());
  assert.ok(got.A.length > 0 && got.B.length > 0, `both nodes got work (${got.A.length}/${got.B.length})`);
  for (const id of [...held, ...later]) assert.ok(!all.includes(id));
  const rows = await db.query<{ lease_node: string }>('SELECT lease_node FROM backstop.messages WHERE id = ANY($1)', [got.A]);
  assert.ok(rows.every((r) => r.lease_node === 'A'));
  const claimed = (await claimDue(a, 'A', { batch: 100, leaseMs: 60_000 }));
  assert.deepEqual(claimed, [], 'all leased');
  await db.query('DELETE FROM backstop.messages');
});

test('a lease that ran out goes to another node; the first node can neither renew nor write its result', async () => {
  const [id] = await put(1);
  const [m] = await claimDue(a, 'A', { batch: 10, leaseMs: 300 });
  assert.equal(m.id, id);
  assert.equal(m.status, 'P');
  assert.deepEqual(await claimDue(b, 'B', { batch: 10, leaseMs: 60_000 }), [], 'held by A');
  assert.deepEqual(await renewLeases(a, 'A', [id], 300), [id], 'A renews while it holds it');
  await sleep(450);
  const [taken] = await claimDue(b, 'B', { batch: 10, leaseMs: 60_000 });
  assert.equal(taken?.id, id, 'B claims it once A\'s lease ran out');
  assert.deepEqual(await renewLeases(a, 'A', [id], 60_000), []);
  assert.equal(await finishAttempt(a, 'A', id, { status: 'D' }), false, 'A\'s late result is refused');
  assert.equal(await removeLeased(a, 'A', id), false);
  const [row] = await db.query<{ lease_node: string; status: string; attempts: number }>('SELECT lease_node, status, attempts FROM backstop.messages WHERE id = $1', [id]);
  assert.deepEqual([row.lease_node, row.status, row.attempts], ['B', 'P', 0]);

  // B defers it: the lease is given up, the message waits in deferred until next_attempt.
  assert.equal(await finishAttempt(b, 'B', id, { status: 'P', nextAttempt: new Date(Date.now() + 3_600_000) }), true);
  const [after] = await db.query<{ queue: string; lease_node: string | null; attempts: number }>('SELECT queue, lease_node, attempts FROM backstop.messages WHERE id = $1', [id]);
  assert.deepEqual([after.queue, after.lease_node, after.attempts], ['deferred', null, 1]);
  assert.deepEqual(await claimDue(a, 'A', { batch: 10, leaseMs: 60_000 }), [], 'not due yet');

  // Due again: claimed and removed with its content.
  await db.query('UPDATE backstop.messages SET next_attempt = now() WHERE id = $1', [id]);
  assert.equal((await claimDue(a, 'A', { batch: 10, leaseMs: 60_000 }))[0]?.id, id);
  assert.equal(await removeLeased(a, 'A', id), true);
  assert.equal((await db.query('SELECT 1 FROM backstop.content WHERE message = $1', [id])).length, 0);
});
