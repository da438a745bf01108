// The shared cache: two verifiers (two Backstop nodes) on one real redis-server started on a
// loopback port for this test; Redis TTLs from the expire rules; Redis down → tempfail, never
// acceptance, and the store reconnects by itself. Needs Debian's redis-server package.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createVerifier, openVerifyStore, parseRedisConfig, RedisStore, type ProbeResult } from '../../src/verify/index.js';
import { Clock, captureLog, scratch } from './helpers.js';
import { freePort, portOpen, sleep } from '../helpers/net.js';

const REDIS = '/usr/bin/redis-server';

async function startRedis(port: number): Promise<ChildProcess> {
  if (!existsSync(REDIS)) throw new Error(`${REDIS} is missing: install the Debian package "redis-server" (apt-get install redis-server) to run this test`);
  const child = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const deadline = Date.now() + 5000;
  for (;;) {
    if (await portOpen(port)) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not start on 127.0.0.1:${port} within 5 s`);
    }
    await sleep(50);
  }
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([done, new Promise((r) => (timer = setTimeout(r, 3000)))]);
  clearTimeout(timer);
  if (child.exitCode === null) child.kill('SIGKILL');
}

let tmp: ReturnType<typeof scratch>;
let port: number;
let redis: ChildProcess;
let configFile: string;

before(async () => {
  tmp = scratch();
  port = await freePort();
  redis = await startRedis(port);
  configFile = `${tmp.dir}/redis-verify.cf`;
  writeFileSync(configFile, `# shared verify cache\nhosts = 127.0.0.1:${port}\nprefix = test:verify:\ntimeout = 1s\nconnect_timeout = 3s\n`);
});
after(async () => {
  await stopRedis(redis);
  tmp.remove();
});

function counting(users: string[]) {
  const seen: string[] = [];
  const prober = async (a: string): Promise<ProbeResult> => {
    seen.push(a);
    await sleep(20);
    return users.includes(a)
      ? { status: 'deliverable', dsn: '2.1.5', text: '250 2.1.5 Ok', relay: 'x' }
      : { status: 'undeliverable', dsn: '5.1.1', text: 'host x said: 550 5.1.1 unknown (in reply to RCPT TO command)', relay: 'x' };
  };
  return { prober, seen };
}

test('two nodes share one cache: verified on one, known to the other, with TTLs from the expire rules', async () => {
  const clock = new Clock();
  const a = await openVerifyStore(`redis:${configFile}`);
  const b = await openVerifyStore(`redis:${configFile}`);
  assert.ok(a instanceof RedisStore, 'a Redis store');
  const pa = counting(['user@primary.test']);
  const pb = counting(['user@primary.test']);
  const params = { address_verify_poll_delay: 0.5 };
  const va = createVerifier({ store: a, prober: pa.prober, params, now: clock.now, log: captureLog().log, cleanupTimer: false });
  const vb = createVerifier({ store: b, prober: pb.prober, params, now: clock.now, log: captureLog().log, cleanupTimer: false });
  let slowA: ReturnType<typeof createVerifier> | undefined;
  try {
    assert.equal((await va.check('user@primary.test', 'recipient')).status, 'deliverable');
    assert.equal((await vb.check('user@primary.test', 'recipient')).status, 'deliverable');
    assert.equal(pa.seen.length + pb.seen.length, 1, 'one probe for both nodes');
    assert.equal(await b.get('user@primary.test'), `0:0:${clock.sec}:250 2.1.5 Ok`);
    const ttl = await (b as RedisStore).ttl('user@primary.test');
    assert.ok(ttl > 31 * 86400 && ttl <= 31 * 86400 + 61, `positive TTL ≈ 31d, got ${ttl}`);
    assert.equal((await vb.check('nobody@primary.test', 'recipient')).status, 'undeliverable');
    const nttl = await (a as RedisStore).ttl('nobody@primary.test');
    assert.ok(nttl > 3 * 86400 && nttl <= 3 * 86400 + 61, `negative TTL ≈ 3d, got ${nttl}`);
    // A probe in flight on node A: node B waits for A's answer instead of probing again.
    slowA = createVerifier({ store: a, prober: async (x) => { await sleep(200); return pa.prober(x); }, params, now: clock.now, log: captureLog().log, cleanupTimer: false });
    const first = slowA!.check('user2@primary.test', 'recipient');
    await sleep(50);
    const second = await vb.check('user2@primary.test', 'recipient');
    assert.equal((await first).status, 'undeliverable');
    assert.equal(second.status, 'undeliverable');
    assert.equal(pb.seen.filter((x) => x === 'user2@primary.test').length, 0, 'node B sent no probe');
    // Entries list through SCAN (cleanup, verify show).
    const keys: string[] = [];
    for await (const [k] of a.entries()) keys.push(k);
    assert.deepEqual(keys.sort(), ['_LAST_CACHE_CLEANUP_COMPLETED_', 'nobody@primary.test', 'user2@primary.test', 'user@primary.test']);
  } finally {
    for (const v of [va, vb, slowA]) await v?.close();
    await a.close();
    await b.close();
  }
});

test('Redis down: tempfail (never acceptance), then it reconnects by itself', async () => {
  const clock = new Clock();
  const store = await openVerifyStore(`redis:${configFile}`);
  const p = counting(['carol@primary.test']);
  const { log, lines } = captureLog();
  const v = createVerifier({ store, prober: p.prober, params: { address_verify_poll_delay: 0.5 }, now: clock.now, log, cleanupTimer: false });
  try {
    assert.equal((await v.check('carol@primary.test', 'recipient')).status, 'deliverable');
    await stopRedis(redis);
    const t0 = Date.now();
    assert.deepEqual(await v.check('carol@primary.test', 'recipient'), { status: 'tempfail', text: 'address verification problem', problem: true });
    assert.ok(Date.now() - t0 < 1000, `a refused connection fails at once, took ${Date.now() - t0} ms`);
    assert.ok(lines.some((l) => l.startsWith(`warning: address verification problem: redis:${configFile}: `)), lines.join('\n'));
    redis = await startRedis(port);
    const deadline = Date.now() + 5000;
    let r = await v.check('carol@primary.test', 'recipient');
    while (r.status === 'tempfail' && Date.now() < deadline) {
      await sleep(100);
      r = await v.check('carol@primary.test', 'recipient');
    }
    // The fresh Redis is empty (no persistence): the address is probed again and accepted.
    assert.equal(r.status, 'deliverable');
  } finally {
    await v.close();
    await store.close();
  }
});

test('redis config file errors name the file and the line', () => {
  const cases: Array<[string, string]> = [
    ['hosts = 127.0.0.1:99999', 'redis config f.cf, line 1: bad hosts value "127.0.0.1:99999": expected host:port'],
    ['# c\nbogus = 1', 'redis config f.cf, line 2: unknown parameter "bogus" (known: hosts, prefix, password, dbnum, timeout, connect_timeout)'],
    ['timeout = soon', 'redis config f.cf, line 1: bad timeout value "soon": expected a time such as 2s or 500ms'],
    ['dbnum = one', 'redis config f.cf, line 1: bad dbnum value "one": expected a number'],
    ['hosts', 'redis config f.cf, line 1: expected "name = value", got "hosts"'],
  ];
  for (const [text, message] of cases) assert.throws(() => parseRedisConfig('f.cf', text), { message });
  assert.deepEqual(parseRedisConfig('f.cf', 'hosts = [::1]:6380\nprefix = v:\npassword = s3cret\ndbnum = 2\ntimeout = 500ms\nconnect_timeout = 1s\n'), {
    host: '::1', port: 6380, prefix: 'v:', password: 's3cret', db: 2, timeoutMs: 500, connectTimeoutMs: 1000,
  });
});
