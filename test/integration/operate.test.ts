// Operating the real server (`backstop start`, two smtpd workers and a queue manager): /metrics
// sums every process and its queue numbers match the queue (five deferred messages read 5, then
// 0 once the primary is back and the watch flushed them); rejects carry the restriction that
// decided; `backstop status` (text and --json) shows the destination, and exits 1 once the master
// is gone; the dashboard's actions answer 403 without configured credentials.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { talk, submit } from '../helpers/smtp-client.js';
import { freePort, waitFor } from '../helpers/net.js';
import { relayConfigDir, startServer } from '../helpers/server.js';
import { makeTestCert, startSink } from '../helpers/sink.js';
import { runCli } from '../helpers/cli.js';

const send = (port: number, rcpt: string, sender = 'a@sender.test') => submit(port, rcpt, { sender });

async function rejected(port: number, rcpt: string): Promise<string> {
  const s = await talk(port);
  try {
    await s.cmd('EHLO client.test');
    await s.cmd('MAIL FROM:<a@sender.test>');
    return await s.cmd(`RCPT TO:<${rcpt}>`);
  } finally {
    s.close();
  }
}

/** The value of one sample in Prometheus text, undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) return Number(m[3]);
  }
  return undefined;
}

test('metrics, status and read-only actions through the real server', { timeout: 150_000 }, async () => {
  const port = await freePort();
  const httpPort = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = relayConfigDir(port, primaryPort, { extra: [
      'backstop_destination_probe_interval = 1s',
      'mail_owner = nobody',
      `backstop_http_listen = 127.0.0.1:${httpPort}`,
      'smtp_tls_security_level = may',
    ] });
  const cert = makeTestCert(['mx1.relay.test'], ['127.0.0.2']);
  const server = await startServer(dir, port);
  const base = `http://127.0.0.1:${httpPort}`;
  let sink: Awaited<ReturnType<typeof startSink>> | undefined;
  try {
    await server.waitForLog(new RegExp(`http listening on 127\\.0\\.0\\.1:${httpPort} \\(read-only\\)`));
    const metrics = async () => {
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      return res.text();
    };

    // Nothing yet: the queue gauges exist for every queue and read 0.
    const empty = await metrics();
    for (const q of ['incoming', 'active', 'deferred', 'hold', 'corrupt']) assert.equal(sample(empty, 'backstop_queue_messages', { queue: q }), 0, q);
    assert.equal(sample(empty, 'backstop_smtpd_messages_accepted_total'), 0);
    assert.ok((sample(empty, 'process_resident_memory_bytes') ?? 0) > 0, 'default process metrics');

    // Five messages for a primary that does not answer: deferred, and the gauges say so.
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await send(port, `u${i}@relay.test`));
    for (const id of ids) await server.waitForLog(new RegExp(`${id}: to=<u\\d@relay.test>.*status=deferred`), 30_000);
    // smtpd_relay_restrictions' default decides first: defer_unauth_destination.
    assert.match(await rejected(port, 'x@elsewhere.test'), /^454 4\.7\.1 .*Relay access denied/);
    const m5 = await waitFor(async () => {
      const t = await metrics();
      return sample(t, 'backstop_queue_messages', { queue: 'deferred' }) === 5 ? t : undefined;
    }, 20_000, 'deferred = 5');
    assert.equal(sample(m5, 'backstop_queue_messages', { queue: 'active' }), 0);
    assert.ok((sample(m5, 'backstop_queue_oldest_message_age_seconds', { queue: 'deferred' }) ?? -1) >= 0);
    assert.equal(sample(m5, 'backstop_destination_up', { destination: 'relay.test' }), 0);
    assert.equal(sample(m5, 'backstop_destination_queued_messages', { destination: 'relay.test' }), 5);
    assert.equal(sample(m5, 'backstop_smtpd_messages_accepted_total'), 5, 'summed over both smtpd workers');
    assert.ok((sample(m5, 'backstop_smtpd_connections_total') ?? 0) >= 6);
    assert.equal(sample(m5, 'backstop_smtpd_rejects_total', { code: '454', restriction: 'defer_unauth_destination' }), 1);
    assert.ok((sample(m5, 'backstop_delivery_attempts_total', { destination: 'relay.test', status: 'deferred' }) ?? 0) >= 5);
    assert.equal(sample(m5, 'backstop_delivery_attempts_total', { destination: 'relay.test', status: 'sent' }), undefined);

    // backstop status: text and JSON, the same numbers.
    const st = await runCli(['status', '-c', dir]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, new RegExp(`master pid ${server.child.pid}`));
    assert.match(st.stdout, /workers: 2 smtpd \(pids \d+, \d+\), qmgr pid \d+/);
    assert.match(st.stdout, /relay\.test: UNREACHABLE since/);
    assert.match(st.stdout, /queued 5, oldest \S+ of 5d 0h, flush on return/);
    assert.match(st.stdout, /rejects in the last hour: defer_unauth_destination 1/);
    assert.match(st.stdout, /queue file system .*free of/);
    const js = await runCli(['status', '--json', '-c', dir]);
    assert.equal(js.code, 0, js.stderr);
    const status = JSON.parse(js.stdout);
    assert.equal(status.master.pid, server.child.pid);
    assert.equal(status.queue.queues.deferred.messages, 5);
    const dest = status.queue.destinations.find((d: { destination: string }) => d.destination === 'relay.test');
    assert.equal(dest.queued, 5);
    assert.equal(dest.up, false);
    assert.deepEqual(dest.messages.map((m: { id: string }) => m.id).sort(), [...ids].sort());
    assert.ok(dest.messages.every((m: { lastError?: string }) => /connect to|Connection refused/i.test(m.lastError ?? '')));

    // Read-only: the action endpoint refuses and nothing changes.
    const refused = await fetch(`${base}/api/action`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'delete', id: ids[0] }) });
    assert.equal(refused.status, 403);
    assert.match(((await refused.json()) as { error: string }).error, /actions are disabled/);
    assert.equal(((await (await fetch(`${base}/api/status`)).json()) as { queue: { queues: { deferred: { messages: number } } } }).queue.queues.deferred.messages, 5);
    assert.equal((await fetch(`${base}/nothing`)).status, 404);

    // The primary comes back: the watch flushes, deferred reads 0, the destination is up.
    sink = await startSink({ host: '127.0.0.2', port: primaryPort, users: [...ids.map((_, i) => `u${i}@relay.test`), 'sender@relay.test'], tls: { key: cert.key, cert: cert.cert } });
    await sink.waitFor(5, 30_000);
    // One the primary refuses: returned to its sender (whose mailbox is on the primary too).
    const refusedId = await send(port, 'nobody@relay.test', 'sender@relay.test');
    await server.waitForLog(new RegExp(`${refusedId}: to=<nobody@relay.test>.*status=bounced`), 30_000);
    await sink.waitFor(6, 30_000);
    const m0 = await waitFor(async () => {
      const t = await metrics();
      return sample(t, 'backstop_queue_messages', { queue: 'deferred' }) === 0 && sample(t, 'backstop_queue_messages', { queue: 'active' }) === 0 ? t : undefined;
    }, 20_000, 'deferred = 0');
    assert.equal(sample(m0, 'backstop_destination_up', { destination: 'relay.test' }), 1);
    assert.equal(sample(m0, 'backstop_destination_queued_messages', { destination: 'relay.test' }), 0);
    assert.equal(sample(m0, 'backstop_delivery_attempts_total', { destination: 'relay.test', status: 'sent' }), 6, 'five, and the bounce notice');
    assert.equal(sample(m0, 'backstop_delivery_attempts_total', { destination: 'relay.test', status: 'bounced' }), 1);
    assert.equal(sample(m0, 'backstop_bounces_total'), 1);
    assert.ok((sample(m0, 'backstop_tls_sessions_total', { direction: 'out' }) ?? 0) >= 1, 'STARTTLS to the primary');
    const last = sample(m0, 'backstop_destination_last_delivery_timestamp_seconds', { destination: 'relay.test' }) ?? 0;
    assert.ok(Math.abs(last - Date.now() / 1000) < 120, `last delivery ${last}`);
    const after = await runCli(['status', '-c', dir]);
    assert.match(after.stdout, /relay\.test: reachable since/);
    assert.match(after.stdout, /last delivery \S+ ago/);
  } finally {
    await server.stop();
    await sink?.close();
    cert.remove();
  }
  // The master is gone: exit 1 with one line.
  const gone = await runCli(['status', '-c', dir]);
  assert.equal(gone.code, 1);
  assert.equal(gone.stderr.trim().split('\n').length, 1);
  assert.match(gone.stderr, /not running/);
  server.cleanup();
});

test('backstop_single_process = yes: the same metrics and status from the one process', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const httpPort = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = relayConfigDir(port, primaryPort, { workers: 0, extra: [
      'backstop_single_process = yes',
      `backstop_http_listen = 127.0.0.1:${httpPort}`,
    ] });
  const server = await startServer(dir, port);
  try {
    await server.waitForLog(/http listening on/);
    const id = await send(port, 'solo@relay.test');
    await server.waitForLog(new RegExp(`${id}: to=<solo@relay.test>.*status=deferred`), 30_000);
    const text = await waitFor(async () => {
      const t = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      return sample(t, 'backstop_queue_messages', { queue: 'deferred' }) === 1 ? t : undefined;
    }, 20_000, 'deferred = 1');
    assert.equal(sample(text, 'backstop_smtpd_messages_accepted_total'), 1, 'counted once, not twice');
    assert.equal(sample(text, 'backstop_destination_queued_messages', { destination: 'relay.test' }), 1);
    const st = await runCli(['status', '-c', dir]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /workers: none \(backstop_single_process = yes/);
    assert.match(st.stdout, /relay\.test: UNREACHABLE since/);
  } finally {
    await server.stop();
    server.cleanup();
  }
});
