// Tests of the test DNS server itself, queried through node:dns exactly as Backstop does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dns from 'node:dns';
import { startDnsServer } from '../helpers/dnsserver.js';

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'no code';
  }
}

test('dnsserver: answers records, NODATA, NXDOMAIN, SERVFAIL, REFUSED, timeout', async () => {
  const server = await startDnsServer({
    'example.test': { MX: [[20, 'backup.test'], [10, 'mx1.example.test']], TXT: ['v=spf1 -all', ['a', 'b']] },
    'mx1.example.test': { A: ['127.0.0.2'], AAAA: ['::1'], ttl: 42 },
    'nullmx.test': { MX: [[0, '.']] },
    'alias.test': { CNAME: 'mx1.example.test' },
    '2.0.0.127.in-addr.arpa': { PTR: ['mx1.example.test'] },
    'half.test': { A: ['127.0.0.3'], MX: 'servfail' },
    '*.wild.test': { A: ['127.0.0.4'] },
    'broken.test': 'servfail',
    'refused.test': 'refused',
    'slow.test': 'timeout',
  });
  try {
    const r = new dns.promises.Resolver({ timeout: 200, tries: 1 });
    r.setServers([server.servers]);
    assert.match(server.servers, /^127\.0\.0\.1:\d+$/);
    assert.deepEqual(await r.resolveMx('example.test'), [
      { exchange: 'backup.test', priority: 20 },
      { exchange: 'mx1.example.test', priority: 10 },
    ]);
    assert.deepEqual(await r.resolveMx('nullmx.test'), [{ exchange: '', priority: 0 }]);
    assert.deepEqual(await r.resolveTxt('example.test'), [['v=spf1 -all'], ['a', 'b']]);
    assert.deepEqual(await r.resolve4('mx1.example.test', { ttl: true }), [{ address: '127.0.0.2', ttl: 42 }]);
    assert.deepEqual(await r.resolve6('MX1.Example.TEST.'), ['::1']);
    assert.deepEqual(await r.resolve4('alias.test'), ['127.0.0.2']);
    assert.deepEqual(await r.reverse('127.0.0.2'), ['mx1.example.test']);
    assert.deepEqual(await r.resolve4('x.y.wild.test'), ['127.0.0.4']);
    assert.equal(await code(r.resolve4('half.test')), 'ok');
    assert.equal(await code(r.resolveMx('half.test')), 'ESERVFAIL');
    assert.equal(await code(r.resolve4('example.test')), 'ENODATA');
    assert.equal(await code(r.resolve4('in-addr.arpa')), 'ENODATA'); // empty non-terminal
    assert.equal(await code(r.resolve4('absent.test')), 'ENOTFOUND');
    assert.equal(await code(r.resolve4('broken.test')), 'ESERVFAIL');
    assert.equal(await code(r.resolve4('refused.test')), 'EREFUSED');
    const started = Date.now();
    assert.equal(await code(r.resolve4('slow.test')), 'ETIMEOUT');
    assert.ok(Date.now() - started < 2000);
  } finally {
    await server.close();
  }
});

test('dnsserver: counts queries, logs them, and set() replaces the zone', async () => {
  const server = await startDnsServer({ 'a.test': { A: ['127.0.0.5'] } });
  try {
    const r = new dns.promises.Resolver({ timeout: 500, tries: 1 });
    r.setServers([server.servers]);
    assert.deepEqual(await r.resolve4('a.test'), ['127.0.0.5']);
    server.set({ 'a.test': { A: ['127.0.0.6'] } });
    // Same node:dns Resolver: no hidden cache in between.
    assert.deepEqual(await r.resolve4('a.test'), ['127.0.0.6']);
    assert.equal(server.queries, 2);
    assert.deepEqual(server.log, [
      { name: 'a.test', type: 'A' },
      { name: 'a.test', type: 'A' },
    ]);
  } finally {
    await server.close();
  }
});

test('dnsserver: large answers are truncated over UDP and served over TCP', async () => {
  const many = Array.from({ length: 60 }, (_, i) => `127.0.1.${i + 1}`);
  const server = await startDnsServer({ 'big.test': { A: many } });
  try {
    const r = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
    r.setServers([server.servers]);
    const got = await r.resolve4('big.test');
    assert.deepEqual([...got].sort(), [...many].sort());
    assert.equal(server.queries, 2); // UDP (TC=1), then TCP
  } finally {
    await server.close();
  }
});
