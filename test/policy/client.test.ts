// The policy delegation client against a small policy server on loopback (and a unix socket)
// that speaks SMTPD_POLICY_README's protocol.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyClient, parsePolicySpec, policyAttributes, type PolicyServiceOptions } from '../../src/policy/index.js';
import { sleep } from '../helpers/net.js';

interface Server { port: number; connections: number; requests: Array<Map<string, string>>; close(): Promise<void> }

async function policyServer(answer: (req: Map<string, string>) => string | null, listen: string | number = 0): Promise<Server> {
  const s: Server = { port: 0, connections: 0, requests: [], close: async () => {} };
  const socks = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    s.connections++;
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const req = new Map(buf.slice(0, i).split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]));
        buf = buf.slice(i + 2);
        s.requests.push(req);
        const a = answer(req);
        if (a === null) sock.destroy();
        else if (a !== 'silent') sock.write(a);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => (typeof listen === 'string' ? server.listen(listen, r) : server.listen(0, '127.0.0.1', r)));
  if (typeof listen !== 'string') s.port = (server.address() as net.AddressInfo).port;
  s.close = () => new Promise((r) => { for (const x of socks) x.destroy(); server.close(() => r()); });
  return s;
}

const opts = (endpoint: string, over: Partial<PolicyServiceOptions> = {}): PolicyServiceOptions => ({
  endpoint, timeoutMs: 1000, maxIdleMs: 5000, maxTtlMs: 60_000, tryLimit: 2, retryDelayMs: 50, requestLimit: 0,
  defaultAction: '451 4.3.5 Server configuration problem', policyContext: '', ...over,
});

const session = {
  stage: 'rcpt' as const, protocol: 'ESMTP' as const, helo: 'client.test', sender: 'a@client.test', recipient: 'b@primary.test',
  recipientCount: 0, clientAddress: '127.0.0.1', clientPort: 4242, clientName: 'client.test', reverseClientName: 'client.test',
  instance: '1.2.3', serverAddress: '127.0.0.1', serverPort: 25, tls: false, saslUsername: 'alice', size: 1234,
};

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => { for (const c of cleanups) await c(); });

test('sends the full attribute set and reads the action; connections are reused', async () => {
  const srv = await policyServer(() => 'action=DEFER_IF_PERMIT Greylisted\n\n');
  cleanups.push(srv.close);
  const c = new PolicyClient(opts(`inet:127.0.0.1:${srv.port}`, { policyContext: 'backup' }));
  cleanups.push(() => c.close());
  assert.deepEqual(await c.query(policyAttributes(session)), { action: 'DEFER_IF_PERMIT Greylisted', fallback: false });
  assert.deepEqual(await c.query(policyAttributes(session)), { action: 'DEFER_IF_PERMIT Greylisted', fallback: false });
  assert.equal(srv.connections, 1);
  const r = srv.requests[0];
  const want: Record<string, string> = {
    request: 'smtpd_access_policy', protocol_state: 'RCPT', protocol_name: 'ESMTP', helo_name: 'client.test', sender: 'a@client.test',
    recipient: 'b@primary.test', recipient_count: '0', client_address: '127.0.0.1', client_name: 'client.test', reverse_client_name: 'client.test',
    instance: '1.2.3', sasl_username: 'alice', size: '1234', client_port: '4242', server_address: '127.0.0.1', server_port: '25', policy_context: 'backup',
    queue_id: '', etrn_domain: '', sasl_method: '', ccert_subject: '', encryption_protocol: '', stress: '',
  };
  for (const [k, v] of Object.entries(want)) assert.equal(r.get(k), v, k);
});

test('recipient at DATA only with exactly one recipient; recipient_count then set', () => {
  const one = new Map(policyAttributes({ ...session, stage: 'data', recipientCount: 1 }));
  assert.equal(one.get('recipient'), 'b@primary.test');
  assert.equal(one.get('recipient_count'), '1');
  assert.equal(one.get('protocol_state'), 'DATA');
  const two = new Map(policyAttributes({ ...session, stage: 'end-of-data', recipientCount: 2 }));
  assert.equal(two.get('recipient'), '');
  assert.equal(two.get('protocol_state'), 'END-OF-MESSAGE');
});

test('newlines in values never break the protocol', async () => {
  const srv = await policyServer(() => 'action=DUNNO\n\n');
  cleanups.push(srv.close);
  const c = new PolicyClient(opts(`inet:127.0.0.1:${srv.port}`));
  cleanups.push(() => c.close());
  await c.query([['request', 'smtpd_access_policy'], ['helo_name', 'evil\n\naction=OK']]);
  assert.equal(srv.requests.length, 1);
  assert.equal(srv.requests[0].get('helo_name'), 'evil  action=OK');
});

test('a server that disconnects: retried on a fresh connection (try_limit), then default action', async () => {
  const srv = await policyServer(() => null);
  cleanups.push(srv.close);
  const c = new PolicyClient(opts(`inet:127.0.0.1:${srv.port}`, { tryLimit: 3, defaultAction: 'DUNNO' }));
  cleanups.push(() => c.close());
  assert.deepEqual(await c.query([['request', 'smtpd_access_policy']]), { action: 'DUNNO', fallback: true });
  assert.equal(srv.connections, 3);
});

test('timeout: a silent server ends in the default action within the limit', async () => {
  const srv = await policyServer(() => 'silent');
  cleanups.push(srv.close);
  const c = new PolicyClient(opts(`inet:127.0.0.1:${srv.port}`, { timeoutMs: 150, tryLimit: 1 }));
  cleanups.push(() => c.close());
  const t0 = Date.now();
  assert.deepEqual(await c.query([['request', 'smtpd_access_policy']]), { action: '451 4.3.5 Server configuration problem', fallback: true });
  assert.ok(Date.now() - t0 < 1000);
});

test('connection refused and a reply without action: default action', async () => {
  const srv = await policyServer(() => 'result=OK\n\n');
  cleanups.push(srv.close);
  const c1 = new PolicyClient(opts(`inet:127.0.0.1:${srv.port}`, { tryLimit: 1 }));
  const warnings: string[] = [];
  const c2 = new PolicyClient(opts('inet:127.0.0.1:1', { tryLimit: 1, warn: (w) => warnings.push(w) }));
  cleanups.push(() => c1.close(), () => c2.close());
  assert.equal((await c1.query([['request', 'smtpd_access_policy']])).fallback, true);
  assert.equal((await c2.query([['request', 'smtpd_access_policy']])).fallback, true);
  assert.match(warnings[0], /^problem talking to server inet:127\.0\.0\.1:1: connect: ECONNREFUSED$/);
});

test('max_ttl and request_limit close the connection; unix: sockets work', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'policy.sock');
  const srv = await policyServer(() => 'action=OK\n\n', path);
  cleanups.push(srv.close);
  const c = new PolicyClient(opts(`unix:${path}`, { requestLimit: 2 }));
  cleanups.push(() => c.close());
  for (let i = 0; i < 4; i++) assert.equal((await c.query([['request', 'smtpd_access_policy']])).action, 'OK');
  assert.equal(srv.connections, 2);
  const ttl = new PolicyClient(opts(`unix:${path}`, { maxTtlMs: 1 }));
  cleanups.push(() => ttl.close());
  await ttl.query([['request', 'smtpd_access_policy']]);
  await sleep(10);
  await ttl.query([['request', 'smtpd_access_policy']]);
  assert.equal(srv.connections, 4);
});

test('per-service settings: { inet:host:port, default_action=DUNNO, timeout=10s }', () => {
  assert.deepEqual(parsePolicySpec('{ inet:127.0.0.1:10000, default_action=451 4.3.5 later, timeout=10s }'), {
    endpoint: 'inet:127.0.0.1:10000', settings: { default_action: '451 4.3.5 later', timeout: '10s' },
  });
  assert.deepEqual(parsePolicySpec('unix:private/policy'), { endpoint: 'unix:private/policy', settings: {} });
  assert.throws(() => parsePolicySpec('{ inet:127.0.0.1:10000, colour=red }'), /unknown setting "colour"/);
  assert.throws(() => parsePolicySpec('inet:127.0.0.1'), /bad policy service address: inet:127\.0\.0\.1 \(expected inet:host:port or unix:pathname\)/);
  assert.throws(() => parsePolicySpec('{ inet:127.0.0.1:1'), /missing "}"/);
});
