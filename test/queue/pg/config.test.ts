// backstop_queue_store's value and the postgres: configuration file: what is accepted, and that
// every bad line is an error naming the file, the line and the value. Files only, no database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPgConfig, parsePgConfig, parseQueueStore } from '../../../src/queue/pg/index.js';
import { paramDef } from '../../../src/config/params.js';
import { tempDir } from '../helpers.js';
import { makeConfigDir } from '../../helpers/server.js';
import { runCli } from '../../helpers/cli.js';

test('backstop_queue_store: file (the default) or postgres:FILE; anything else is an error', () => {
  assert.equal(paramDef('backstop_queue_store')?.default, 'file');
  assert.deepEqual(parseQueueStore('file'), { kind: 'file' });
  assert.deepEqual(parseQueueStore(''), { kind: 'file' });
  assert.deepEqual(parseQueueStore('postgres:/etc/backstop/pg.cf'), { kind: 'postgres', file: '/etc/backstop/pg.cf' });
  assert.throws(() => parseQueueStore('pgsql:/etc/x.cf'), /Error: bad value "pgsql:\/etc\/x.cf": expected "file" or "postgres:CONFIG_FILE"/);
  assert.throws(() => parseQueueStore('postgres:'), /bad value/);
});

test('a full configuration: several hosts, defaults, password_file, TLS files read at load', () => {
  const { dir, cleanup } = tempDir();
  try {
    writeFileSync(join(dir, 'pw'), 's3cret\nignored\n');
    writeFileSync(join(dir, 'ca.pem'), 'CA PEM');
    const file = join(dir, 'pg.cf');
    writeFileSync(file, `# queue\nhosts = db1.example:6432 [::1]:5433, 127.0.0.1\ndbname = mail\nuser = mx\npassword_file = ${dir}/pw\nsslmode = verify-full\nsslrootcert = ${dir}/ca.pem\nconnect_timeout = 500ms\nquery_timeout = 1m\npool_size = 7\nnode_name = mx-2\n`);
    const cfg = loadPgConfig(file);
    assert.deepEqual(cfg.hosts, [{ host: 'db1.example', port: 6432 }, { host: '::1', port: 5433 }, { host: '127.0.0.1', port: 5432 }]);
    assert.equal(cfg.dbname, 'mail');
    assert.equal(cfg.user, 'mx');
    assert.equal(cfg.password, 's3cret');
    assert.equal(cfg.sslmode, 'verify-full');
    assert.equal(cfg.sslrootcert, 'CA PEM');
    assert.equal(cfg.connectTimeoutMs, 500);
    assert.equal(cfg.queryTimeoutMs, 60_000);
    assert.equal(cfg.poolSize, 7);
    assert.equal(cfg.nodeName, 'mx-2');
    const min = parsePgConfig('min.cf', 'hosts = localhost\ndbname = d\nuser = u\n');
    assert.equal(min.sslmode, 'disable');
    assert.equal(min.connectTimeoutMs, 5000);
    assert.equal(min.queryTimeoutMs, 30_000);
    assert.equal(min.poolSize, 20);
    assert.equal(min.password, undefined);
    assert.equal(min.nodeName, undefined);
  } finally {
    cleanup();
  }
});

const base = 'hosts = 127.0.0.1\ndbname = d\nuser = u\n';
const bad: [string, string, RegExp][] = [
  ['no equals sign', base + 'sslmode\n', /pg\.cf, line 4: expected "name = value", got "sslmode"/],
  ['unknown parameter', base + 'database = x\n', /pg\.cf, line 4: unknown parameter "database" \(known: hosts, dbname/],
  ['bad port', 'hosts = db:99999\n', /pg\.cf, line 1: bad hosts value "db:99999"/],
  ['empty hosts', 'hosts =\n', /pg\.cf, line 1: hosts is empty/],
  ['bad sslmode', base + 'sslmode = prefer\n', /line 4: bad sslmode "prefer": expected one of disable, require, verify-ca, verify-full/],
  ['bad time', base + 'connect_timeout = soon\n', /line 4: bad connect_timeout value "soon"/],
  ['bad pool size', base + 'pool_size = 0\n', /line 4: bad pool_size "0": expected 1..1000/],
  ['bad node name', base + 'node_name = a b\n', /line 4: bad node_name "a b"/],
  ['missing password file', base + 'password_file = /nonexistent/pw\n', /line 4: password_file \/nonexistent\/pw: No such file or directory/],
  ['missing hosts', 'dbname = d\nuser = u\n', /pg\.cf: hosts is required/],
  ['missing dbname', 'hosts = h\nuser = u\n', /pg\.cf: dbname is required/],
  ['missing user', 'hosts = h\ndbname = d\n', /pg\.cf: user is required/],
  ['verify without a CA', base + 'sslmode = verify-ca\n', /sslmode verify-ca needs sslrootcert/],
];
for (const [desc, text, re] of bad) {
  test(`postgres config: ${desc} is an error naming file and line`, () => {
    assert.throws(() => parsePgConfig('/etc/backstop/pg.cf', text), re);
  });
}

test('backstop_queue_lease_time: 60s by default (postconf -d), a time, at least 1 s', async () => {
  assert.equal(paramDef('backstop_queue_lease_time')?.default, '60s');
  const dir = makeConfigDir({ 'main.cf': 'queue_directory = spool\ndata_directory = data\nbackstop_queue_lease_time = 0\n' });
  try {
    const d = await runCli(['postconf', '-c', dir, '-d', 'backstop_queue_lease_time']);
    assert.equal(d.stdout, 'backstop_queue_lease_time = 60s\n');
    const bad = await runCli(['check', '-c', dir]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /backstop_queue_lease_time/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('postgres config: a missing file is an error naming it', () => {
  assert.throws(() => loadPgConfig('/nonexistent/pg.cf'), /postgres config \/nonexistent\/pg.cf: open: No such file or directory/);
});

test('backstop check: postgres:FILE is parsed (errors name file and line); a good one is accepted', async () => {
  const base = 'queue_directory = spool\ndata_directory = data\n';
  const dirs = [
    makeConfigDir({ 'main.cf': `${base}backstop_queue_store = postgres:pg.cf\n`, 'pg.cf': 'hosts = 127.0.0.1\ndbname = d\nuser = u\n' }),
    makeConfigDir({ 'main.cf': `${base}backstop_queue_store = postgres:pg.cf\n`, 'pg.cf': 'hosts = 127.0.0.1\nsslmode = maybe\n' }),
    makeConfigDir({ 'main.cf': `${base}backstop_queue_store = mysql:x.cf\n` }),
    makeConfigDir({ 'main.cf': `${base}backstop_queue_store = file\n` }),
  ];
  try {
    const [good, badFile, badValue, file] = await Promise.all(dirs.map((d) => runCli(['check', '-c', d])));
    assert.equal(good.code, 0, good.stderr);
    // Accepted: at most check's warning that no database answers where it points (none runs here).
    assert.doesNotMatch(good.stderr, /error:/);
    for (const line of good.stderr.split('\n').filter((l) => /backstop_queue_store/.test(l))) assert.match(line, /warning: .*cannot reach the queue database/);
    assert.equal(badFile.code, 1);
    assert.match(badFile.stderr, /error: .*main\.cf, line 3: parameter backstop_queue_store: postgres config .*pg\.cf, line 2: bad sslmode "maybe"/);
    assert.match(badValue.stderr, /error: .*main\.cf, line 3: parameter backstop_queue_store: bad value "mysql:x.cf"/);
    assert.doesNotMatch(file.stderr, /backstop_queue_store/);
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});
