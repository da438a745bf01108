// `backstop check` (a process) with the PostgreSQL queue store: it connects to the database and
// warns when a 250 would not wait for a synchronous standby — a primary without one, then the
// same primary with a synchronous standby made by pg_basebackup (no warning), then with that
// standby stopped (warning: none connected) — and an unreachable database is a warning naming the
// hosts, within connect_timeout, not a crash. Needs Debian's postgresql package.
//
// The exit status is not asserted: until the queue manager side lands, check also reports the
// store itself as an error ("cannot be used yet", src/check/check.ts); these warnings stand apart.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { runCli } from '../helpers/cli.js';
import { makeConfigDir } from '../helpers/server.js';
import { freePort } from '../helpers/net.js';
import { PgQueueStore, parsePgConfig } from '../../src/queue/pg/index.js';
import { quietLog } from '../queue/helpers.js';

let primary: TestPostgres;
let standby: TestPostgres | undefined;
const dirs: string[] = [];

before(async () => {
  primary = await startPostgres();
  // The schema exists as on a running cluster (check needs none, but a real one has it).
  const store = await PgQueueStore.open({ config: parsePgConfig('t.cf', primary.configText()), nodeName: 'n', slot: 0, maillog: quietLog().log });
  await store.close();
});
after(() => {
  standby?.remove();
  primary?.remove();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function configDir(pgcf: string): string {
  const d = makeConfigDir({ 'main.cf': 'myhostname = mx.example\nqueue_directory = spool\nbackstop_queue_store = postgres:queue-pg.cf\n', 'queue-pg.cf': pgcf });
  dirs.push(d);
  return d;
}

/** check's lines about backstop_queue_store other than the "cannot be used yet" refusal. */
async function storeLines(dir: string): Promise<{ lines: string[]; stderr: string; code: number }> {
  const r = await runCli(['check', '-c', dir], { timeoutMs: 30_000 });
  const lines = r.stderr.split('\n').filter((l) => l.includes('backstop_queue_store') && !l.includes('cannot be used yet'));
  return { lines, stderr: r.stderr, code: r.code };
}

test('no synchronous standby, then one, then it is gone: check warns, is quiet, warns', async () => {
  const dir = configDir(primary.configText());
  let r = await storeLines(dir);
  assert.ok(r.code === 0 || r.code === 1, r.stderr);
  assert.deepEqual(r.lines, [
    `backstop/check: warning: ${dir}/main.cf, line 3: parameter backstop_queue_store: the queue database has no synchronous standby (synchronous_standby_names is empty): a 250 waits only for the primary's disk`,
  ]);

  standby = await primary.standby('sb1');
  await primary.makeSynchronous('sb1', 'FIRST 1 (sb1)');
  r = await storeLines(dir);
  assert.deepEqual(r.lines, [], r.stderr);

  standby.stop();
  r = await storeLines(dir);
  assert.equal(r.lines.length, 1, r.stderr);
  assert.match(r.lines[0], /warning: .*parameter backstop_queue_store: the queue database reports no synchronous standby connected \(synchronous_standby_names = 'FIRST 1 \(sb1\)'\): commits wait, and smtpd answers 451, until one connects$/);
  await primary.query('ALTER SYSTEM RESET synchronous_standby_names');
  await primary.query('SELECT pg_reload_conf()');
});

test('an unreachable database: a warning naming every host, within connect_timeout', async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const dir = configDir(primary.configText().replace(/^hosts = .*$/m, `hosts = 127.0.0.1:${p1}, [::1]:${p2}`).replace('connect_timeout = 2s', 'connect_timeout = 1s'));
  const t0 = Date.now();
  const r = await storeLines(dir);
  assert.ok(Date.now() - t0 < 20_000);
  assert.ok(!/\n\s+at /.test(r.stderr), `no stack trace: ${r.stderr}`);
  assert.equal(r.lines.length, 1, r.stderr);
  assert.match(
    r.lines[0],
    new RegExp(`^backstop/check: warning: .*main\\.cf, line 3: parameter backstop_queue_store: cannot reach the queue database on 127\\.0\\.0\\.1:${p1}, \\[::1\\]:${p2}: queue database unreachable \\(127\\.0\\.0\\.1:${p1}: .+; \\[::1\\]:${p2}: .+\\)$`),
  );
});

test('the file store: check does not connect anywhere', async () => {
  const d = makeConfigDir({ 'main.cf': 'myhostname = mx.example\nqueue_directory = spool\n' });
  dirs.push(d);
  const r = await runCli(['check', '-c', d], { timeoutMs: 30_000 });
  assert.doesNotMatch(r.stderr, /queue database/);
});
