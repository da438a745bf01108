// Connection slots across nodes, on a real PostgreSQL started by this test: two "nodes" (two
// PgSlots, each on its own connection) asking at once never hold more than the limit together,
// and what they hold is what pg_locks shows; a released slot is free for the other node; a
// terminated backend (pg_terminate_backend: a node that died) frees its slots for the other node,
// while the node that lost its connection opens nothing (fail closed, logged once) until it is
// back. Needs Debian's postgresql package.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connectPrimary, parsePgConfig, PgSlots, slotKey, type PgConfig } from '../../../src/queue/pg/index.js';
import { startPostgres, type TestPostgres } from '../../helpers/postgres.js';
import { waitFor } from '../../helpers/net.js';

let db: TestPostgres;
let cfg: PgConfig;

before(async () => {
  db = await startPostgres();
  cfg = parsePgConfig('t.cf', db.configText());
});
after(() => db?.remove());

function node(name: string): { slots: PgSlots; lines: string[] } {
  const lines: string[] = [];
  const slots = new PgSlots({
    connect: () => connectPrimary(cfg, { keepAlive: true, applicationName: `slots-${name}` }),
    log: { info: (t) => lines.push(`info: ${t}`), warning: (t) => lines.push(`warning: ${t}`) },
    retryMs: 100,
  });
  return { slots, lines };
}

/** Advisory locks held in the database for this next hop, per application_name. */
async function locksHeld(nexthop: string): Promise<Record<string, number>> {
  const rows = await db.query<{ app: string; n: string }>(
    `SELECT a.application_name AS app, count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid = ($1::int)::oid AND l.granted
      GROUP BY 1 ORDER BY 1`,
    [slotKey(nexthop)],
  );
  return Object.fromEntries(rows.map((r) => [r.app, Number(r.n)]));
}

test('slotKey: stable, per next hop, case-insensitive', () => {
  assert.equal(slotKey('smtp:[primary.test]:25'), slotKey('SMTP:[Primary.TEST]:25'));
  assert.notEqual(slotKey('smtp:[primary.test]:25'), slotKey('smtp:[other.test]:25'));
  assert.ok(Number.isInteger(slotKey('x')) && Math.abs(slotKey('x')) < 2 ** 31);
});

test('two nodes asking at once never hold more than the limit together; a release frees a slot for the other node', async () => {
  const a = node('a');
  const b = node('b');
  try {
    assert.equal(await a.slots.ready(), true);
    assert.equal(await b.slots.ready(), true);
    const hop = 'smtp:[primary.test]:25';
    const limit = 3;
    // 20 requests from each node at once.
    const got = await Promise.all([
      ...Array.from({ length: 20 }, () => a.slots.tryAcquire(hop, limit).then((r) => ({ n: 'a', r }))),
      ...Array.from({ length: 20 }, () => b.slots.tryAcquire(hop, limit).then((r) => ({ n: 'b', r }))),
    ]);
    const granted = got.filter((g) => g.r !== null);
    assert.equal(granted.length, limit, 'exactly the limit is granted across both nodes');
    assert.equal(a.slots.heldBy(hop) + b.slots.heldBy(hop), limit);
    const inDb = await locksHeld(hop);
    assert.equal((inDb['slots-a'] ?? 0) + (inDb['slots-b'] ?? 0), limit, `pg_locks: ${JSON.stringify(inDb)}`);
    assert.equal(inDb['slots-a'] ?? 0, a.slots.heldBy(hop));
    // Another next hop has its own slots.
    const other = await a.slots.tryAcquire('smtp:[other.test]:25', 1);
    assert.ok(other);
    other();

    // Full: both nodes are refused; one release, and the other node (whichever) gets that slot.
    assert.equal(await a.slots.tryAcquire(hop, limit), null);
    assert.equal(await b.slots.tryAcquire(hop, limit), null);
    const fromA = granted.find((g) => g.n === 'a');
    const releaser = fromA ?? granted[0];
    const taker = releaser.n === 'a' ? b : a;
    releaser.r!();
    releaser.r!(); // a second call changes nothing
    const again = await waitFor(() => taker.slots.tryAcquire(hop, limit), 2000, 'the released slot');
    assert.equal(await (releaser.n === 'a' ? a : b).slots.tryAcquire(hop, limit), null, 'still at the limit');
    again();
    for (const g of granted) if (g !== releaser) g.r!();
    await waitFor(async () => Object.keys(await locksHeld(hop)).length === 0, 2000, 'every lock released');
    // A limit is a positive integer.
    await assert.rejects(a.slots.tryAcquire(hop, 0), RangeError);
  } finally {
    await a.slots.close();
    await b.slots.close();
  }
});

test('a node whose backend is terminated loses its slots to the other node, opens nothing until it is back, and says so once', async () => {
  const a = node('a');
  const b = node('b');
  try {
    await a.slots.ready();
    await b.slots.ready();
    const hop = 'smtp:[primary.test]:2525';
    const mine = [await a.slots.tryAcquire(hop, 2), await a.slots.tryAcquire(hop, 2)];
    assert.ok(mine.every(Boolean));
    assert.equal(await b.slots.tryAcquire(hop, 2), null, 'A holds both');

    await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'slots-a'`);
    // B gets both slots: PostgreSQL dropped A's locks with its connection.
    const taken = [await waitFor(() => b.slots.tryAcquire(hop, 2), 5000, 'a slot freed by the dead connection'), await b.slots.tryAcquire(hop, 2)];
    assert.ok(taken.every(Boolean));
    await waitFor(() => !a.slots.connected, 5000, 'A notices the loss');
    // A: no slot while it is down (fail closed), even for a next hop nobody uses.
    assert.equal(await a.slots.tryAcquire('smtp:[quiet.test]:25', 5), null);
    assert.equal(a.lines.filter((l) => l.startsWith('warning:')).length, 1, a.lines.join('\n'));
    assert.match(a.lines[0], /connection slots: no connection to the queue database: .*no new delivery connections until it is back/);

    // A comes back (retryMs 100): its two running deliveries still count against the limit, since B
    // took their slots meanwhile; so A opens nothing for that hop until they end.
    await waitFor(async () => (await a.slots.tryAcquire('smtp:[quiet.test]:25', 5).then((r) => (r?.(), r))) !== null, 5000, 'A reconnects');
    assert.equal(a.lines.filter((l) => l.startsWith('warning:')).length, 1, 'logged once');
    assert.ok(a.lines.some((l) => /^info: connection slots: queue database connection is back/.test(l)));
    assert.equal(await a.slots.tryAcquire(hop, 2), null);
    for (const r of mine) r!();
    for (const r of taken) r!();
    const back = await waitFor(() => a.slots.tryAcquire(hop, 2), 2000, 'a free slot for A');
    back();
  } finally {
    await a.slots.close();
    await b.slots.close();
  }
});

test('a node that closes releases everything; one that cannot connect grants nothing', async () => {
  const a = node('a');
  await a.slots.ready();
  const hop = 'smtp:[closing.test]:25';
  assert.ok(await a.slots.tryAcquire(hop, 1));
  await a.slots.close();
  await waitFor(async () => Object.keys(await locksHeld(hop)).length === 0, 2000, 'locks released by close');

  const lines: string[] = [];
  const nowhere = new PgSlots({
    connect: () => connectPrimary({ ...cfg, hosts: [{ host: '127.0.0.1', port: 1 }], connectTimeoutMs: 500 }),
    log: { info: (t) => lines.push(t), warning: (t) => lines.push(t) },
    retryMs: 10,
  });
  try {
    assert.equal(await nowhere.ready(), false);
    assert.equal(await nowhere.tryAcquire(hop, 1), null);
    assert.equal(await nowhere.ready(), false);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], /queue database unreachable \(127\.0\.0\.1:1: /);
  } finally {
    await nowhere.close();
  }
});
