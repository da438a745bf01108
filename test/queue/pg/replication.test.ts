// The PostgreSQL queue store with a synchronous streaming standby, both started by this test on
// loopback (initdb, pg_basebackup): hosts are tried in order (a dead one and the standby passed
// over); with synchronous_commit = remote_apply a committed message is on the standby the moment
// commit() resolves; with the standby gone, commit gives 451 (never a 250 without a replica);
// after the primary is lost and the standby promoted, the same store carries on with the promoted
// server and nothing committed before is missing. Needs Debian's postgresql package.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SmtpError } from '../../../src/mail/index.js';
import { PgQueueStore, parsePgConfig, synchronousStandbyProblem } from '../../../src/queue/pg/index.js';
import pg from 'pg';
import { startPostgres, PG_DB, PG_PASSWORD, PG_USER, type TestPostgres } from '../../helpers/postgres.js';
import { freePort, sleep } from '../../helpers/net.js';
import { envelope, message, quietLog } from '../helpers.js';

let primary: TestPostgres;
let standby: TestPostgres;

before(async () => {
  primary = await startPostgres();
  standby = await primary.standby('sb1');
  await primary.makeSynchronous('sb1', 'sb1', { synchronous_commit: 'remote_apply' });
});
after(() => {
  standby?.remove();
  primary?.remove();
});

test('synchronous standby: hosts in order, dead and standby passed over; 250 only with the standby; failover to the promoted standby', async () => {
  const dead = await freePort();
  const cfg = parsePgConfig(
    'ha.cf',
    `hosts = 127.0.0.1:${dead} 127.0.0.1:${standby.port} 127.0.0.1:${primary.port}\ndbname = ${PG_DB}\nuser = ${PG_USER}\npassword = ${PG_PASSWORD}\nconnect_timeout = 2s\nquery_timeout = 3s\n`,
  );
  const { log, lines } = quietLog();
  const store = await PgQueueStore.open({ config: cfg, nodeName: 'node-a', slot: 1, maillog: log });
  const is451 = (e: unknown) => e instanceof SmtpError && e.reply.code === 451 && e.reply.dsn === '4.3.0';
  try {
    // Committed: on the standby already when commit resolves (remote_apply).
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const tx = store.begin(envelope());
      await tx.write([message(`message ${i}\r\n`)]);
      ids.push(await tx.commit());
      const onStandby = await standby.query('SELECT 1 FROM backstop.messages WHERE id = $1', [ids[i]]);
      assert.equal(onStandby.length, 1, `${ids[i]} on the standby when commit resolved`);
    }

    // What backstop check will say: nothing while the standby is there, a warning when it is not.
    const client = await store.connect();
    try {
      assert.equal(await synchronousStandbyProblem(client), null);
    } finally {
      client.release();
    }

    // The standby away: COMMIT waits for it; the session gets 451 at query_timeout, never 250.
    standby.stop();
    const c2 = new pg.Client({ host: primary.dir, port: primary.port, user: PG_USER, database: PG_DB });
    await c2.connect();
    try {
      assert.match((await synchronousStandbyProblem(c2)) ?? '', /reports no synchronous standby connected \(synchronous_standby_names = 'sb1'\)/);
    } finally {
      await c2.end();
    }
    const waiting = store.begin(envelope());
    await waiting.write([message('while the standby is away\r\n')]);
    const t0 = Date.now();
    await assert.rejects(waiting.commit(), is451);
    assert.ok(Date.now() - t0 >= 2500, `451 after query_timeout, not before (${Date.now() - t0} ms)`);
    await waiting.abort();
    standby.start();

    // The primary lost; the standby promoted: the same store finds it (the next host in order).
    for (let i = 0; ; i++) {
      const r = await standby.query<{ n: string }>('SELECT count(*) AS n FROM backstop.messages');
      if (Number(r[0].n) >= ids.length) break;
      if (i >= 100) throw new Error('standby did not catch up in 10 s');
      await sleep(100);
    }
    primary.stop();
    standby.promote();
    await primary.query('SELECT 1').then(
      () => assert.fail('primary still answers'),
      () => undefined,
    );
    const after = store.begin(envelope());
    await after.write([message('after the failover\r\n')]);
    let id: string | undefined;
    // The first attempt may meet a pooled connection to the old primary: 451, then the next works.
    for (let i = 0; i < 3 && !id; i++) {
      const tx = i === 0 ? after : store.begin(envelope());
      if (i > 0) await tx.write([message('after the failover\r\n')]);
      id = await tx.commit().catch(async (e) => {
        assert.ok(is451(e), String(e));
        await tx.abort();
        return undefined;
      });
    }
    assert.ok(id, 'a message commits on the promoted standby');
    const rows = await standby.query<{ id: string }>('SELECT id FROM backstop.messages');
    const have = new Set(rows.map((r) => r.id));
    for (const x of [...ids, id!]) assert.ok(have.has(x), `${x} on the promoted server`);
    assert.ok(lines.some((l) => /queue database unavailable/.test(l)), lines.join('\n'));
  } finally {
    await store.close();
  }
});
