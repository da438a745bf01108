// The HTTP listener's parts: the listen address, the action token (plain or sha256:, constant-time
// compare, refused without a file, cross-origin refused), the action requests it forwards to the
// control socket, the last-hour window, the restriction label on rejects, the status text, and
// the server itself on a loopback port (status codes of every refusal; the queue manager not
// answering is a 503). The full path through the real server is in test/integration/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { actionRequest, isLoopback, loadActionAuth, parseListen, refuseAction, startHttp, systemStatus } from '../../src/http/index.js';
import { HourWindow, type Observation } from '../../src/observe/index.js';
import { formatStatus } from '../../src/status/index.js';
import { freePort } from '../helpers/net.js';
import { makeConfigDir } from '../helpers/server.js';
import { runCli } from '../helpers/cli.js';

test('backstop_http_listen: host:port, [v6]:port, empty; errors say what is expected', () => {
  const cases: Array<{ input: string; expected: unknown }> = [
    { input: '', expected: undefined },
    { input: '127.0.0.1:9025', expected: { host: '127.0.0.1', port: 9025 } },
    { input: '[::1]:9025', expected: { host: '::1', port: 9025 } },
    { input: 'localhost:80', expected: { host: 'localhost', port: 80 } },
  ];
  for (const c of cases) assert.deepEqual(parseListen(c.input), c.expected, c.input);
  assert.throws(() => parseListen('9025'), /"9025" is not host:port or \[address\]:port/);
  assert.throws(() => parseListen('127.0.0.1:70000'), /port 70000 is not 1\.\.65535/);
  assert.throws(() => parseListen('::1:9025'), /not host:port/);
  assert.ok(isLoopback('127.0.0.2') && isLoopback('::1') && isLoopback('localhost'));
  assert.ok(!isLoopback('0.0.0.0') && !isLoopback('192.0.2.1') && !isLoopback('::'));
});

test('the action token: plain or sha256:, refused without a file, a wrong token or another origin', () => {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-auth-'));
  try {
    const plain = join(dir, 'plain');
    writeFileSync(plain, 's3cret\n');
    const hashed = join(dir, 'hashed');
    writeFileSync(hashed, `sha256:${createHash('sha256').update('s3cret').digest('hex')}\n`);
    writeFileSync(join(dir, 'empty'), '\n');
    for (const file of [plain, hashed]) {
      const auth = loadActionAuth(file);
      assert.equal(refuseAction(auth, { authorization: 'Bearer s3cret', host: 'h:1' }), undefined, file);
      assert.equal(refuseAction(auth, { authorization: 'Bearer s3cret', host: 'h:1', origin: 'http://h:1' }), undefined);
      assert.deepEqual(refuseAction(auth, { authorization: 'Bearer wrong', host: 'h:1' }), { status: 403, error: 'a valid action token is required' });
      assert.deepEqual(refuseAction(auth, { host: 'h:1' }), { status: 403, error: 'a valid action token is required' });
      assert.deepEqual(refuseAction(auth, { authorization: 'Bearer s3cret', host: 'h:1', origin: 'http://evil.example' }), { status: 403, error: 'cross-origin request refused' });
    }
    assert.match(refuseAction(loadActionAuth(''), { authorization: 'Bearer x' })!.error, /actions are disabled: no backstop_http_action_token_file/);
    assert.match(loadActionAuth(join(dir, 'empty')).problem!, /is empty: actions are disabled/);
    assert.match(loadActionAuth(join(dir, 'missing')).problem!, /ENOENT: actions are disabled/);
    assert.equal(loadActionAuth(join(dir, 'missing')).digest, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('action requests: what goes to the control socket, and clear errors for the rest', () => {
  const cases: Array<{ desc: string; input: unknown; expected: unknown }> = [
    { desc: 'flush', input: { action: 'flush', destination: 'Relay.Test' }, expected: { op: 'flush-site', site: 'relay.test' } },
    { desc: 'hold', input: { action: 'hold', id: '72B4D10049588' }, expected: { op: 'hold', ids: ['72B4D10049588'] } },
    { desc: 'delete', input: { action: 'delete', id: '72B4D10049588' }, expected: { op: 'delete', ids: ['72B4D10049588'] } },
    { desc: 'not an object', input: 'x', expected: 'the body must be a JSON object' },
    { desc: 'unknown action', input: { action: 'explode' }, expected: 'action must be one of flush, hold, release, requeue, delete' },
    { desc: 'ALL is not an id', input: { action: 'delete', id: 'ALL' }, expected: 'delete needs a queue id' },
    { desc: 'bad domain', input: { action: 'flush', destination: 'a b' }, expected: 'flush needs a destination (a domain name)' },
  ];
  for (const c of cases) assert.deepEqual(actionRequest(c.input), c.expected, c.desc);
});

test('the last hour: per-minute buckets, older ones drop out', () => {
  let now = 0;
  const w = new HourWindow(() => now);
  w.add('a');
  w.add('a');
  now = 30 * 60_000;
  w.add('b');
  assert.deepEqual(w.totals(), { a: 2, b: 1 });
  now = 60 * 60_000 + 1;
  assert.deepEqual(w.totals(), { b: 1 });
  now = 200 * 60_000;
  assert.deepEqual(w.totals(), {});
});

const observation: Observation = {
  workers: [
    { pid: 11, role: 'qmgr', started: 0, ready: true },
    { pid: 12, role: 'smtpd', started: 0, ready: true },
    { pid: 13, role: 'smtpd', started: 0, ready: true },
  ],
  reports: [
    { pid: 12, role: 'smtpd', metrics: [], rejectsLastHour: { reject_unauth_destination: 2 }, verifyLastHour: { hit: 3, miss: 1 }, verifyCacheSize: 40 },
    { pid: 13, role: 'smtpd', metrics: [], rejectsLastHour: { reject_unauth_destination: 1, reject_rbl_client: 4 }, verifyLastHour: { hit: 4 } },
    {
      pid: 11, role: 'qmgr', metrics: [], rejectsLastHour: {}, verifyLastHour: {},
      queue: {
        queues: { incoming: { messages: 0, oldestAge: 0 }, active: { messages: 0, oldestAge: 0 }, deferred: { messages: 2, oldestAge: 7200 }, hold: { messages: 0, oldestAge: 0 }, corrupt: { messages: 0, oldestAge: 0 } },
        destinations: [{ destination: 'relay.test', up: false, since: 1_000_000 - 3600_000, queued: 2, oldestAge: 7200, nextRetry: 'flush on return', lastDelivery: 1_000_000 - 86400_000, lastError: 'connect to x: Connection refused', messages: [] }],
        maximalQueueLifetime: 432000,
        disk: { path: '/q', freeBytes: 5 * 1024 ** 3, totalBytes: 10 * 1024 ** 3 },
      },
    },
  ],
  missing: 1,
};

test('the system status sums the workers and reads as one screen', () => {
  const st = systemStatus({ version: '9', pid: 10, started: 1_000_000 - 90_000 }, observation, 1_000_000);
  assert.deepEqual(st.rejectsLastHour, { reject_unauth_destination: 3, reject_rbl_client: 4 });
  assert.deepEqual(st.verify, { cacheSize: 40, hitsLastHour: 7, missesLastHour: 1, hitRateLastHour: 7 / 8 });
  assert.equal(st.master.uptime, 90);
  const text = formatStatus(st);
  for (const line of [
    'Backstop 9: master pid 10, up 1m 30s',
    'workers: 2 smtpd (pids 12, 13), qmgr pid 11',
    'warning: 1 worker did not answer: their numbers are missing',
    'queue: incoming 0, active 0, deferred 2 (oldest 2h 0m), hold 0, corrupt 0',
    'queue file system /q: 5.0 GiB free of 10 GiB',
    'relay.test: UNREACHABLE since 1h 0m ago',
    '  queued 2, oldest 2h 0m of 5d 0h, flush on return',
    '  last delivery 1d 0h ago',
    '  last error: connect to x: Connection refused',
    'verify cache: 40 entries, last hour hit rate 87.5% (7 hits, 1 misses)',
    'rejects in the last hour: reject_rbl_client 4, reject_unauth_destination 3',
  ]) assert.ok(text.split('\n').includes(line), `missing line ${JSON.stringify(line)} in:\n${text}`);
});

test('the HTTP server: routes, every refusal with its status, no queue manager is a 503', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-http-'));
  const token = join(dir, 'token');
  writeFileSync(token, 'tok\n');
  const port = await freePort();
  const server = await startHttp({ listen: { host: '127.0.0.1', port }, master: { version: '9', pid: 10, started: Date.now() }, queueDirectory: join(dir, 'spool'), auth: loadActionAuth(token), observe: async () => observation });
  const base = `http://127.0.0.1:${port}`;
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${base}/api/action`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer tok', ...headers }, body });
  try {
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<html lang="en">/);
    assert.doesNotMatch(html, /https?:\/\/(?!127)/, 'no external resource');
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const st = (await (await fetch(`${base}/api/status`)).json()) as { actions: boolean; queue: { queues: { deferred: { messages: number } } } };
    assert.equal(st.actions, true);
    assert.equal(st.queue.queues.deferred.messages, 2);
    assert.match(await (await fetch(`${base}/metrics`)).text(), /^backstop_smtpd_connections_total 0$/m);
    assert.equal((await post('{"action":"flush","destination":"relay.test"}', { authorization: 'Bearer nope' })).status, 403);
    assert.equal((await post('{"action":"flush","destination":"relay.test"}', { origin: 'http://evil.example' })).status, 403);
    assert.equal((await post('{"action":"flush","destination":"relay.test"}', { 'content-type': 'text/plain' })).status, 415);
    assert.equal((await post('{not json')).status, 400);
    assert.equal((await post('x'.repeat(10_000))).status, 413);
    assert.equal((await post('{"action":"hold","id":"ALL"}')).status, 400);
    assert.equal((await fetch(`${base}/api/action`)).status, 405);
    // DNS rebinding: a foreign Host on a loopback listener is refused.
    const rebound = await new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/api/status', headers: { host: `evil.example:${port}` } }, (r) => (r.resume(), resolve(r.statusCode ?? 0))).on('error', reject).end();
    });
    assert.equal(rebound, 421);
    const down = await post('{"action":"flush","destination":"relay.test"}');
    assert.equal(down.status, 503);
    assert.deepEqual(await down.json(), { error: 'the queue manager is not answering' });
    // Without a token file: read-only.
    server.update({ auth: loadActionAuth('') });
    assert.equal((await post('{"action":"flush","destination":"relay.test"}')).status, 403);
    assert.equal(((await (await fetch(`${base}/api/status`)).json()) as { actions: boolean }).actions, false);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('backstop check: a listener other hosts reach warns unless an action token protects it; a bad one is an error', async () => {
  const base = 'queue_directory = spool\ndata_directory = data\n';
  const open = makeConfigDir({ 'main.cf': `${base}backstop_http_listen = 0.0.0.0:9025\n` });
  const guarded = makeConfigDir({ 'main.cf': `${base}backstop_http_listen = 0.0.0.0:9025\nbackstop_http_action_token_file = token\n`, token: 'x\n' });
  const loop = makeConfigDir({ 'main.cf': `${base}backstop_http_listen = 127.0.0.1:9025\n` });
  const bad = makeConfigDir({ 'main.cf': `${base}backstop_http_listen = 9025\n` });
  try {
    const r1 = await runCli(['check', '-c', open]);
    assert.match(r1.stderr, /warning: .*main\.cf, line 3: backstop_http_listen 0\.0\.0\.0:9025 is reachable from other hosts and no backstop_http_action_token_file protects/);
    assert.doesNotMatch((await runCli(['check', '-c', guarded])).stderr, /backstop_http_listen/);
    assert.doesNotMatch((await runCli(['check', '-c', loop])).stderr, /backstop_http_listen/);
    const r4 = await runCli(['check', '-c', bad]);
    assert.equal(r4.code, 1);
    assert.match(r4.stderr, /error: .*main\.cf, line 3: parameter backstop_http_listen: "9025" is not host:port/);
  } finally {
    for (const d of [open, guarded, loop, bad]) rmSync(d, { recursive: true, force: true });
  }
});
