// The PostgreSQL queue store on a real PostgreSQL started by this test (test/helpers/postgres.ts):
// migrations (fresh, re-run, concurrent, a newer schema refused), the transaction (commit visible
// only once commit resolved, abort, 552 over the size limit, the database stopped before or
// during a message → 451 and nothing half-written, logged once), the ids of two nodes, a 10 MB
// message streamed without being held whole in memory. Needs Debian's postgresql package.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SmtpError } from '../../../src/mail/index.js';
import { CHUNK_BYTES, LATEST_VERSION, MIGRATIONS, PgQueueStore, isOutage, pgStorageError, migrate, synchronousStandbyProblem, parsePgConfig, loadPgConfig, type PgConfig } from '../../../src/queue/pg/index.js';
import type { QueueEntry } from '../../../src/queue/index.js';
import { startPostgres, PG_DB, PG_USER, type TestPostgres } from '../../helpers/postgres.js';
import { envelope, message, chunks, collect, quietLog, tempDir } from '../helpers.js';

let db: TestPostgres;
let cfg: PgConfig;

before(async () => {
  db = await startPostgres();
  cfg = parsePgConfig('test.cf', db.configText());
});
after(() => db?.remove());

async function openStore(over: { nodeName?: string; slot?: number; messageSizeLimit?: number; config?: PgConfig } = {}) {
  const { log, lines } = quietLog();
  const committed: QueueEntry[] = [];
  const store = await PgQueueStore.open({
    config: over.config ?? cfg,
    nodeName: over.nodeName ?? 'node-a',
    slot: over.slot ?? 1,
    messageSizeLimit: over.messageSizeLimit,
    maillog: log,
    onCommitted: (e) => committed.push(e),
  });
  return { store, lines, committed };
}

const count = async (table: string): Promise<number> => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM backstop.${table}`))[0].n);

function is451(err: unknown): boolean {
  return err instanceof SmtpError && err.reply.code === 451 && err.reply.dsn === '4.3.0';
}

test('migrations: a fresh database gets the whole schema; a re-run changes nothing; the password file and TCP login work', async () => {
  const { dir, cleanup } = tempDir();
  try {
    writeFileSync(join(dir, 'pw'), 'test-secret\n');
    writeFileSync(join(dir, 'pg.cf'), db.configText().replace(/^password = .*$/m, `password_file = ${dir}/pw`));
    const { store } = await openStore({ config: loadPgConfig(join(dir, 'pg.cf')) });
    assert.deepEqual(store.migration, { from: 0, to: LATEST_VERSION, applied: MIGRATIONS.map((m) => m.version) });
    await store.close();
  } finally {
    cleanup();
  }
  const tables = (await db.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'backstop' ORDER BY 1`)).map((r) => r.t);
  assert.deepEqual(tables, ['content', 'messages', 'nodes', 'schema_migrations']);
  const versions = await db.query<{ version: number }>('SELECT version FROM backstop.schema_migrations ORDER BY version');
  assert.deepEqual(versions.map((v) => v.version), MIGRATIONS.map((m) => m.version));

  // Again, twice at once (two nodes starting together): nothing applied, nothing broken.
  const [a, b] = await Promise.all([openStore({ nodeName: 'node-a' }), openStore({ nodeName: 'node-b' })]);
  try {
    for (const s of [a, b]) assert.deepEqual(s.store.migration, { from: LATEST_VERSION, to: LATEST_VERSION, applied: [] });
    assert.notEqual(a.store.node, b.store.node);
  } finally {
    await a.store.close();
    await b.store.close();
  }
  assert.equal((await db.query('SELECT 1 FROM backstop.schema_migrations')).length, MIGRATIONS.length);
});

test('migrations only add: no DROP, TRUNCATE, DELETE or type change in any of them', () => {
  for (const m of MIGRATIONS) assert.doesNotMatch(m.sql, /\b(DROP|TRUNCATE|RENAME)\b|(?<!ON )\bDELETE\b|ALTER\s+COLUMN\s+\w+\s+TYPE/i, `migration ${m.version}`);
});

test('migrations: a schema newer than this backstop knows is refused, and nothing changes', async () => {
  const client = new pg.Client({ host: db.dir, port: db.port, user: PG_USER, database: PG_DB });
  await client.connect();
  try {
    const newer = [...MIGRATIONS, { version: LATEST_VERSION + 1, name: 'from the future', sql: 'CREATE TABLE backstop.future (x int)' }];
    const r = await migrate(client as unknown as pg.PoolClient, newer);
    assert.deepEqual(r.applied, [LATEST_VERSION + 1]);
    await assert.rejects(migrate(client as unknown as pg.PoolClient), new RegExp(`schema is version ${LATEST_VERSION + 1}, newer than this backstop knows \\(${LATEST_VERSION}\\)`));
    await assert.rejects(openStore(), /newer than this backstop knows/);
  } finally {
    await client.query('DELETE FROM backstop.schema_migrations WHERE version > $1', [LATEST_VERSION]);
    await client.query('DROP TABLE backstop.future');
    await client.end();
  }
});

test('commit: envelope and content in the database, visible only once commit has resolved; logged; announced', async () => {
  const { store, lines, committed } = await openStore();
  try {
    const env = envelope({ recipients: [{ address: 'a@primary.test', notify: ['SUCCESS'], orcpt: 'rfc822;a@primary.test' }, { address: 'b@primary.test' }] });
    const tx = store.begin(env);
    const content = message('x'.repeat(CHUNK_BYTES + 100) + '\r\n');
    await tx.write(chunks(content.subarray(0, 1000)));
    await tx.write([content.subarray(1000)]);
    assert.equal((await db.query('SELECT 1 FROM backstop.messages WHERE id = $1', [tx.id])).length, 0, 'nothing visible before commit');
    const id = await tx.commit();
    assert.equal(id, tx.id);
    const [row] = await db.query<Record<string, unknown>>('SELECT * FROM backstop.messages WHERE id = $1', [id]);
    assert.equal(row.queue, 'active');
    assert.equal(row.sender, 'sender@client.test');
    assert.deepEqual(row.recipients, ['a@primary.test', 'b@primary.test']);
    assert.equal(row.status, 'PP');
    assert.equal(Number(row.message_size), content.length);
    assert.equal(row.message_id, '<m1@client.test>');
    assert.equal(row.accepted_by, 'node-a');
    assert.equal(row.chunks, 2);
    assert.deepEqual(row.envelope, JSON.parse(JSON.stringify(env)));
    assert.equal((row.arrival_time as Date).getTime(), env.arrivalTime);
    assert.ok((await collect(store.readContent(id))).equals(content));
    assert.deepEqual(committed.map((e) => [e.id, e.queue, e.messageSize, e.status]), [[id, 'active', content.length, 'PP']]);
    assert.deepEqual(lines, [`smtpd: ${id}: client=localhost[127.0.0.1]`, `cleanup: ${id}: message-id=<m1@client.test>`]);

    const held = store.begin(envelope(), { logClient: false });
    await held.write([message()]);
    await held.commit({ queue: 'hold' });
    assert.equal((await db.query<{ queue: string }>('SELECT queue FROM backstop.messages WHERE id = $1', [held.id]))[0].queue, 'hold');
    // An empty message commits too (no content rows).
    const empty = store.begin(envelope());
    await empty.commit();
    assert.equal((await collect(store.readContent(empty.id))).length, 0);
  } finally {
    await store.close();
  }
});

test('abort: nothing in the database, before or after content; idempotent; no-op after commit', async () => {
  const { store, committed } = await openStore();
  try {
    const before = [await count('messages'), await count('content')];
    const t1 = store.begin(envelope());
    await t1.abort();
    const t2 = store.begin(envelope());
    await t2.write([Buffer.alloc(CHUNK_BYTES * 2 + 5, 0x61)]);
    await t2.abort();
    await t2.abort();
    await assert.rejects(t2.commit(), (e: unknown) => is451(e));
    assert.deepEqual([await count('messages'), await count('content')], before);
    const t3 = store.begin(envelope());
    await t3.write([message()]);
    await t3.commit();
    await t3.abort();
    assert.equal((await db.query('SELECT 1 FROM backstop.messages WHERE id = $1', [t3.id])).length, 1);
    assert.equal(committed.length, 1);
  } finally {
    await store.close();
  }
});

test('size limit: 552 5.3.4, the rest of the stream still read, nothing written', async () => {
  const { store } = await openStore({ messageSizeLimit: CHUNK_BYTES + 10 });
  try {
    const before = [await count('messages'), await count('content')];
    const tx = store.begin(envelope());
    let read = 0;
    async function* body() {
      for (let i = 0; i < 5; i++) {
        read++;
        yield Buffer.alloc(CHUNK_BYTES / 2, 0x62);
      }
    }
    await assert.rejects(tx.write(body()), (e: unknown) => e instanceof SmtpError && e.reply.code === 552 && e.reply.dsn === '5.3.4' && e.reply.text === 'Message file too big');
    assert.equal(read, 5);
    await assert.rejects(tx.commit(), (e: unknown) => e instanceof SmtpError && e.reply.code === 552);
    await tx.abort();
    assert.deepEqual([await count('messages'), await count('content')], before);
  } finally {
    await store.close();
  }
});

test('no recipients is 554 5.5.1; a closed store is 451 4.3.0', async () => {
  const { store } = await openStore();
  assert.throws(() => store.begin(envelope({ recipients: [] })), (e: unknown) => e instanceof SmtpError && e.reply.code === 554);
  await store.close();
  assert.throws(() => store.begin(envelope()), (e: unknown) => is451(e));
});

test('two nodes: their ids never meet', async () => {
  const a = await openStore({ nodeName: 'node-a', slot: 1 });
  const b = await openStore({ nodeName: 'node-b', slot: 1 });
  try {
    const ids = new Set<string>();
    for (let i = 0; i < 200; i++) for (const s of [a.store, b.store]) ids.add(s.begin(envelope()).id);
    assert.equal(ids.size, 400);
  } finally {
    await a.store.close();
    await b.store.close();
  }
});

test('the database stopped: 451 4.3.0 (never a commit), logged once, nothing half-written; back by itself when it returns', async () => {
  const { store, lines, committed } = await openStore();
  try {
    const before = [await count('messages'), await count('content')];
    // A message under way when the database goes: content already inserted, then the stop.
    const during = store.begin(envelope());
    await during.write([Buffer.alloc(CHUNK_BYTES + 1, 0x63)]);
    db.stop();
    await assert.rejects(during.commit(), (e: unknown) => is451(e));
    await during.abort();
    // New messages while it is away: at write or at commit, always 451.
    for (let i = 0; i < 3; i++) {
      const tx = store.begin(envelope());
      await assert.rejects(
        (async () => {
          await tx.write([message()]);
          await tx.commit();
        })(),
        (e: unknown) => is451(e),
      );
      await tx.abort();
    }
    assert.equal(committed.length, 0);
    assert.equal(lines.filter((l) => /queue database unavailable/.test(l)).length, 1, lines.join('\n'));
    db.start();
    assert.deepEqual([await count('messages'), await count('content')], before, 'nothing half-written');
    const tx = store.begin(envelope());
    await tx.write([message()]);
    await tx.commit();
    assert.equal(committed.length, 1);
    assert.equal(lines.filter((l) => /queue database available again/.test(l)).length, 1, lines.join('\n'));
  } finally {
    await store.close();
  }
});

test('a 10 MB message is streamed in chunks: the heap does not grow by the message', async () => {
  const { store } = await openStore();
  try {
    const size = 10 * 1024 * 1024;
    const piece = Buffer.alloc(64 * 1024, 0x64);
    // What stays reachable, measured after a full collection every 1 MB (garbage does not count).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const used = () => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const base = used();
    let peak = 0;
    async function* body() {
      for (let sent = 0; sent < size; sent += piece.length) {
        // A fresh buffer each time, as a socket gives; the store must not keep them.
        yield Buffer.from(piece);
        if (sent % (1024 * 1024) === 0) peak = Math.max(peak, used() - base);
      }
    }
    const tx = store.begin(envelope());
    await tx.write(body());
    const id = await tx.commit();
    assert.equal(Number((await db.query<{ n: string }>('SELECT sum(length(data)) AS n FROM backstop.content WHERE message = $1', [id]))[0].n), size);
    assert.equal((await db.query<{ n: number }>('SELECT chunks AS n FROM backstop.messages WHERE id = $1', [id]))[0].n, Math.ceil(size / CHUNK_BYTES));
    // Loose: a chunk or two in flight and the driver's buffers; holding the message would be ≥ 10 MB.
    assert.ok(peak < 4 * 1024 * 1024, `memory grew by ${(peak / 1048576).toFixed(1)} MB while streaming 10 MB`);
    let total = 0;
    for await (const c of store.readContent(id)) total += c.length;
    assert.equal(total, size);
  } finally {
    await store.close();
  }
});

test('outage or statement error: no answer, connection and resource classes are an outage; a constraint error is not; both are 451', () => {
  const dbErr = (code: string) => Object.assign(new pg.DatabaseError('x', 1, 'error'), { code });
  assert.equal(isOutage(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })), true);
  assert.equal(isOutage(new Error('Query read timeout')), true);
  for (const c of ['08006', '53100', '57P01', '58030', 'XX000']) assert.equal(isOutage(dbErr(c)), true, c);
  for (const c of ['23505', '42P01', '25006']) assert.equal(isOutage(dbErr(c)), false, c);
  assert.equal(pgStorageError(dbErr('53100')).reply.code, 452);
  assert.equal(pgStorageError(dbErr('23505')).reply.code, 451);
  assert.equal(pgStorageError(new Error('gone')).reply.dsn, '4.3.0');
});

test('a lone primary: backstop check\'s standby question says there is no synchronous standby', async () => {
  const client = new pg.Client({ host: db.dir, port: db.port, user: PG_USER, database: PG_DB });
  await client.connect();
  try {
    assert.match((await synchronousStandbyProblem(client)) ?? '', /no synchronous standby \(synchronous_standby_names is empty\)/);
  } finally {
    await client.end();
  }
});
