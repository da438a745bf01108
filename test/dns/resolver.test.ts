// Resolver tests against the loopback test DNS server, reached through a
// backstop_dns_servers-style server list (never the system resolver).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver, parseRblFilter, type DnsResult } from '../../src/dns/index.js';
import { startDnsServer, type TestDnsServer, type ZoneSpec } from '../helpers/dnsserver.js';

const zone: ZoneSpec = {
  'example.test': { MX: [[20, 'backup.test'], [10, 'MX1.example.test.'], [10, 'mx2.example.test']], TXT: ['v=spf1 ', ['-all']] },
  'mx1.example.test': { A: ['127.0.0.2', '127.0.0.3'], AAAA: ['2001:db8::2'], ttl: 120 },
  'v4only.test': { A: ['127.0.0.7'] },
  'v6only.test': { AAAA: ['2001:db8::7'] },
  'nullmx.test': { MX: [[0, '.']] },
  'mixedroot.test': { MX: [[0, '.'], [10, 'mx1.example.test']] },
  'half.test': { A: ['127.0.0.8'], AAAA: 'servfail' },
  'broken.test': 'servfail',
  'refused.test': 'refused',
  'slow.test': 'timeout',
  // PTR / forward confirmation
  '10.0.0.127.in-addr.arpa': { PTR: ['Good.test.'] },
  'good.test': { A: ['127.0.0.10'] },
  '11.0.0.127.in-addr.arpa': { PTR: ['liar.test'] },
  'liar.test': { A: ['127.0.0.99'] },
  '13.0.0.127.in-addr.arpa': { PTR: ['gone.test'] },
  '14.0.0.127.in-addr.arpa': { PTR: ['slowfwd.test'] },
  'slowfwd.test': 'timeout',
  '15.0.0.127.in-addr.arpa': 'servfail',
  '16.0.0.127.in-addr.arpa': { PTR: ['1.2.3.4'] },
  '17.0.0.127.in-addr.arpa': { PTR: ['-bad-.test'] },
  '18.0.0.127.in-addr.arpa': { PTR: ['nov4.test'] },
  'nov4.test': { AAAA: ['2001:db8::18'] },
  '0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa': { PTR: ['v6host.test'] },
  'v6host.test': { AAAA: ['2001:db8:0:0:0:0:0:10'], A: ['127.0.0.10'] },
  // DNSBL / RHSBL
  '2.0.0.127.zen.test': { A: ['127.0.0.2'], TXT: ['Listed: see https://zen.test/2'] },
  '3.0.0.127.zen.test': { A: ['127.0.0.4', '127.0.0.10'] },
  '4.0.0.127.zen.test': { A: ['127.255.255.254'] },
  '5.0.0.127.zen.test': 'servfail',
  '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test': { A: ['127.0.0.3'] },
  'spammer.test.dbl.test': { A: ['127.0.1.2'], TXT: ['bad domain'] },
};

let server: TestDnsServer;
before(async () => {
  server = await startDnsServer(zone);
});
after(async () => {
  await server.close();
});

/** A fresh resolver (fresh cache) pointing at the test server. */
function resolver(extra: Partial<ConstructorParameters<typeof Resolver>[0]> = {}): Resolver {
  return new Resolver({ servers: [server.servers], timeoutMs: 1000, ...extra });
}

function status(r: { status: string }): string {
  return r.status;
}

test('a/aaaa/txt: every outcome', async () => {
  const r = resolver();
  const cases: Array<{ desc: string; run: () => Promise<DnsResult<string>>; expected: unknown }> = [
    { desc: 'A ok with ttl', run: () => r.a('mx1.example.test'), expected: { status: 'ok', records: ['127.0.0.2', '127.0.0.3'], ttl: 120 } },
    { desc: 'AAAA ok', run: () => r.aaaa('MX1.Example.Test.'), expected: { status: 'ok', records: ['2001:db8::2'], ttl: 120 } },
    { desc: 'TXT joined', run: () => r.txt('example.test'), expected: { status: 'ok', records: ['v=spf1 ', '-all'], ttl: 60 } },
    { desc: 'NODATA', run: () => r.a('example.test'), expected: { status: 'noData' } },
    { desc: 'NXDOMAIN', run: () => r.a('absent.test'), expected: { status: 'notFound' } },
    { desc: 'malformed name, never sent', run: () => r.a('a..b.test'), expected: { status: 'notFound' } },
    { desc: 'label too long', run: () => r.a('x'.repeat(64) + '.test'), expected: { status: 'notFound' } },
    { desc: 'space in name', run: () => r.a('a b.test'), expected: { status: 'notFound' } },
  ];
  for (const c of cases) assert.deepEqual(await c.run(), c.expected, c.desc);
  const servfail = await r.a('broken.test');
  assert.deepEqual(servfail.status === 'tempFail' && servfail.error.code, 'ESERVFAIL');
  const refused = await r.a('refused.test');
  assert.deepEqual(refused.status === 'tempFail' && refused.error.code, 'EREFUSED');
});

test('timeout: a silent server gives tempFail within the deadline', async () => {
  const r = resolver({ timeoutMs: 300 });
  const started = Date.now();
  const result = await r.mx('slow.test');
  const elapsed = Date.now() - started;
  assert.equal(result.status, 'tempFail');
  assert.equal(result.status === 'tempFail' && result.error.code, 'ETIMEOUT');
  assert.ok(elapsed < 1000, `took ${elapsed} ms`);
});

test('unreachable server: tempFail, never notFound', async () => {
  const gone = await startDnsServer({});
  const servers = [gone.servers];
  await gone.close();
  const r = new Resolver({ servers, timeoutMs: 300 });
  const result = await r.a('example.test');
  assert.equal(result.status, 'tempFail');
  assert.ok(result.status === 'tempFail' && ['ECONNREFUSED', 'ETIMEOUT'].includes(result.error.code), JSON.stringify(result));
});

test('mx: sorted by preference (stable), names normalised; null MX; NODATA; NXDOMAIN; SERVFAIL', async () => {
  const r = resolver();
  assert.deepEqual(await r.mx('example.test'), {
    status: 'ok',
    records: [
      { exchange: 'mx1.example.test', preference: 10 },
      { exchange: 'mx2.example.test', preference: 10 },
      { exchange: 'backup.test', preference: 20 },
    ],
    ttl: 60,
  });
  assert.deepEqual(await r.mx('nullmx.test'), { status: 'nullMx' });
  assert.deepEqual(await r.mx('mixedroot.test'), {
    status: 'ok',
    records: [{ exchange: 'mx1.example.test', preference: 10 }],
    ttl: 60,
  });
  assert.deepEqual(await r.mx('mx1.example.test'), { status: 'noData' });
  assert.deepEqual(await r.mx('absent.test'), { status: 'notFound' });
  assert.equal(status(await r.mx('broken.test')), 'tempFail');
});

test('addresses: inet_protocols, merge rules', async () => {
  const r = resolver();
  assert.deepEqual(await r.addresses('mx1.example.test'), {
    status: 'ok',
    records: ['127.0.0.2', '127.0.0.3', '2001:db8::2'],
    ttl: 120,
  });
  assert.deepEqual(await r.addresses('mx1.example.test', { inet_protocols: 'ipv4' }), {
    status: 'ok',
    records: ['127.0.0.2', '127.0.0.3'],
    ttl: 120,
  });
  assert.deepEqual(await r.addresses('mx1.example.test', { inet_protocols: ['ipv6'] }), {
    status: 'ok',
    records: ['2001:db8::2'],
    ttl: 120,
  });
  assert.deepEqual(await r.addresses('v6only.test', { inet_protocols: 'ipv4' }), { status: 'noData' });
  assert.deepEqual((await r.addresses('v6only.test')).status, 'ok');
  // One family failing temporarily does not hide the other's answer.
  assert.deepEqual(await r.addresses('half.test'), { status: 'ok', records: ['127.0.0.8'], ttl: 300 });
  assert.equal(status(await r.addresses('half.test', { inet_protocols: 'ipv6' })), 'tempFail');
  assert.deepEqual(await r.addresses('absent.test'), { status: 'notFound' });
  assert.deepEqual(await r.addresses('example.test'), { status: 'noData' });
  await assert.rejects(r.addresses('x.test', { inet_protocols: [] }), {
    message: 'dns: inet_protocols enables no address family',
  });
});

test('ptr: IPv4 and IPv6 reverse names', async () => {
  const r = resolver();
  assert.deepEqual(await r.ptr('127.0.0.10'), { status: 'ok', records: ['good.test'], ttl: 60 });
  assert.deepEqual(await r.ptr('2001:db8::10'), { status: 'ok', records: ['v6host.test'], ttl: 60 });
  assert.deepEqual(await r.ptr('127.0.0.12'), { status: 'notFound' });
  assert.throws(() => r.ptr('not-an-ip'), { name: 'TypeError', message: 'not an IP address: "not-an-ip"' });
});

test('clientName: forward-confirmed reverse lookup, as Postfix', async () => {
  const r = resolver({ timeoutMs: 300 });
  const ok = (name: string) => ({ name, reverseName: name, nameStatus: 'ok', reverseNameStatus: 'ok', temporary: false });
  const cases: Array<{ desc: string; ip: string; expected: unknown }> = [
    { desc: 'match', ip: '127.0.0.10', expected: ok('good.test') },
    { desc: 'IPv4-mapped client', ip: '::ffff:127.0.0.10', expected: ok('good.test') },
    { desc: 'IPv6 match (textual forms differ)', ip: '2001:DB8:0::10', expected: ok('v6host.test') },
    {
      desc: 'mismatch',
      ip: '127.0.0.11',
      expected: {
        name: 'unknown', reverseName: 'liar.test', nameStatus: 'forged', reverseNameStatus: 'ok', temporary: false,
        warning: 'hostname liar.test does not resolve to address 127.0.0.11',
      },
    },
    {
      desc: 'no PTR',
      ip: '127.0.0.12',
      expected: { name: 'unknown', reverseName: 'unknown', nameStatus: 'perm', reverseNameStatus: 'perm', temporary: false },
    },
    {
      desc: 'PTR name does not exist',
      ip: '127.0.0.13',
      expected: {
        name: 'unknown', reverseName: 'gone.test', nameStatus: 'forged', reverseNameStatus: 'ok', temporary: false,
        warning: 'hostname gone.test does not resolve to address 127.0.0.13: Name or service not known',
      },
    },
    {
      desc: 'PTR name has no address of the client family',
      ip: '127.0.0.18',
      expected: {
        name: 'unknown', reverseName: 'nov4.test', nameStatus: 'forged', reverseNameStatus: 'ok', temporary: false,
        warning: 'hostname nov4.test does not resolve to address 127.0.0.18: No address associated with hostname',
      },
    },
    {
      desc: 'forward lookup times out: temporary',
      ip: '127.0.0.14',
      expected: {
        name: 'unknown', reverseName: 'slowfwd.test', nameStatus: 'temp', reverseNameStatus: 'ok', temporary: true,
        warning: 'hostname slowfwd.test does not resolve to address 127.0.0.14: Temporary failure in name resolution',
      },
    },
    {
      desc: 'PTR SERVFAIL: temporary',
      ip: '127.0.0.15',
      expected: { name: 'unknown', reverseName: 'unknown', nameStatus: 'temp', reverseNameStatus: 'temp', temporary: true },
    },
    {
      desc: 'numeric PTR name',
      ip: '127.0.0.16',
      expected: {
        name: 'unknown', reverseName: 'unknown', nameStatus: 'perm', reverseNameStatus: 'perm', temporary: false,
        warning: 'numeric hostname: 1.2.3.4',
      },
    },
    {
      desc: 'malformed PTR name',
      ip: '127.0.0.17',
      expected: {
        name: 'unknown', reverseName: 'unknown', nameStatus: 'perm', reverseNameStatus: 'perm', temporary: false,
        warning: 'valid_hostname: misplaced hyphen: -bad-.test',
      },
    },
  ];
  for (const c of cases) assert.deepEqual(await r.clientName(c.ip), c.expected, c.desc);
  await assert.rejects(r.clientName('300.1.1.1'), { name: 'TypeError', message: 'not an IP address: "300.1.1.1"' });
});

test('rblLookup/rhsblLookup: listings, filters, list errors, temporary failures', async () => {
  const r = resolver();
  assert.deepEqual(await r.rblLookup('zen.test', '127.0.0.2'), {
    status: 'listed',
    query: '2.0.0.127.zen.test',
    addresses: ['127.0.0.2'],
    texts: ['Listed: see https://zen.test/2'],
    ttl: 300,
  });
  assert.deepEqual(await r.rblLookup('zen.test', '127.0.0.1'), { status: 'notListed', query: '1.0.0.127.zen.test', addresses: [] });
  // Filters: =127.0.0.2 rejects a 127.0.0.4/127.0.0.10 answer; a range pattern accepts it.
  assert.deepEqual(await r.rblLookup('zen.test', '127.0.0.3', parseRblFilter('127.0.0.2')), {
    status: 'notListed',
    query: '3.0.0.127.zen.test',
    addresses: ['127.0.0.4', '127.0.0.10'],
  });
  assert.deepEqual(await r.rblLookup('zen.test', '127.0.0.3', parseRblFilter('127.0.0.[2;4..6]')), {
    status: 'listed',
    query: '3.0.0.127.zen.test',
    addresses: ['127.0.0.4', '127.0.0.10'],
    texts: [],
    ttl: 300,
  });
  assert.deepEqual(await r.rblLookup('zen.test', '127.0.0.4'), {
    status: 'listError',
    query: '4.0.0.127.zen.test',
    addresses: ['127.255.255.254'],
    error: 'DNSBL zen.test answered 127.255.255.254 for 4.0.0.127.zen.test: an error code (127.255.255.0/24), not a listing',
  });
  // Even a filter that would accept it does not turn a list error into a listing.
  assert.equal(status(await r.rblLookup('zen.test', '127.0.0.4', parseRblFilter('127.[0..255].[0..255].[0..255]'))), 'listError');
  const temp = await r.rblLookup('zen.test', '127.0.0.5');
  assert.deepEqual(temp.status === 'tempFail' && [temp.query, temp.error.code], ['5.0.0.127.zen.test', 'ESERVFAIL']);
  assert.deepEqual(await r.rblLookup('zen.test.', '2001:db8::1'), {
    status: 'listed',
    query: '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test',
    addresses: ['127.0.0.3'],
    texts: [],
    ttl: 300,
  });
  assert.throws(() => r.rblLookup('zen.test', 'nope'), { name: 'TypeError', message: 'not an IP address: "nope"' });
  assert.deepEqual(await r.rhsblLookup('dbl.test', 'Spammer.TEST.'), {
    status: 'listed',
    query: 'spammer.test.dbl.test',
    addresses: ['127.0.1.2'],
    texts: ['bad domain'],
    ttl: 300,
  });
  assert.deepEqual(await r.rhsblLookup('dbl.test', 'clean.test'), { status: 'notListed', query: 'clean.test.dbl.test', addresses: [] });
  assert.deepEqual(await r.rhsblLookup('dbl.test', ''), { status: 'notListed', query: '.dbl.test', addresses: [] });
});

test('cache: answers and negative answers are served from cache; tempFail is not cached', async () => {
  const r = resolver();
  const before = server.queries;
  await r.mx('example.test');
  await r.a('absent.test');
  await r.a('example.test');
  await r.a('broken.test');
  assert.equal(server.queries - before, 4);
  assert.deepEqual((await r.mx('example.test')).status, 'ok');
  assert.deepEqual(await r.a('absent.test'), { status: 'notFound' });
  assert.deepEqual(await r.a('EXAMPLE.test.'), { status: 'noData' });
  assert.equal(server.queries - before, 4, 'cached answers do not reach the server');
  assert.equal(status(await r.a('broken.test')), 'tempFail');
  assert.equal(server.queries - before, 5, 'a temporary failure is asked again');
});

test('cache: entries expire at their TTL (fake clock), cacheSize bounds the cache, 0 disables it', async () => {
  let now = 1_000_000;
  const r = resolver({ now: () => now, negativeTtlSec: 5 });
  const count = async (run: () => Promise<unknown>) => {
    const before = server.queries;
    await run();
    return server.queries - before;
  };
  assert.equal(await count(() => r.a('mx1.example.test')), 1); // TTL 120 s
  now += 119_999;
  assert.equal(await count(() => r.a('mx1.example.test')), 0);
  now += 1;
  assert.equal(await count(() => r.a('mx1.example.test')), 1);
  assert.equal(await count(() => r.a('absent.test')), 1); // negative: 5 s
  now += 4_999;
  assert.equal(await count(() => r.a('absent.test')), 0);
  now += 1;
  assert.equal(await count(() => r.a('absent.test')), 1);

  const small = resolver({ cacheSize: 1 });
  assert.equal(await count(() => small.a('v4only.test')), 1);
  assert.equal(await count(() => small.a('mx1.example.test')), 1); // evicts v4only.test
  assert.equal(await count(() => small.a('mx1.example.test')), 0);
  assert.equal(await count(() => small.a('v4only.test')), 1);

  const none = resolver({ cacheSize: 0 });
  assert.equal(await count(() => none.a('v4only.test')), 1);
  assert.equal(await count(() => none.a('v4only.test')), 1);

  const capped = resolver({ now: () => now, maxTtlSec: 10 });
  assert.equal(await count(() => capped.a('v4only.test')), 1); // TTL 300 capped to 10 s
  now += 10_000;
  assert.equal(await count(() => capped.a('v4only.test')), 1);
});

test('concurrent identical queries share one lookup', async () => {
  const r = resolver({ cacheSize: 0 });
  const before = server.queries;
  const results = await Promise.all(Array.from({ length: 10 }, () => r.mx('example.test')));
  assert.equal(server.queries - before, 1);
  for (const result of results) assert.equal(result.status, 'ok');
  // Different types of one name are different queries.
  const [mx, a] = await Promise.all([r.mx('mx1.example.test'), r.a('mx1.example.test')]);
  assert.deepEqual([mx.status, a.status], ['noData', 'ok']);
  assert.equal(server.queries - before, 3);
});

test('close() cancels outstanding queries as tempFail', async () => {
  const r = resolver({ timeoutMs: 2000 });
  const pending = r.a('slow.test');
  r.close();
  const result = await pending;
  assert.equal(result.status === 'tempFail' && result.error.code, 'ECANCELLED');
});

test('bad options: exact errors', () => {
  const cases: Array<{ options: ConstructorParameters<typeof Resolver>[0]; message: string }> = [
    { options: { servers: ['localhost'] }, message: 'backstop_dns_servers: invalid server "localhost": expected IP, IP:port or [IPv6]:port' },
    { options: { servers: ['127.0.0.1:0'] }, message: 'backstop_dns_servers: invalid server "127.0.0.1:0": expected IP, IP:port or [IPv6]:port' },
    { options: { servers: ['127.0.0.1:65536'] }, message: 'backstop_dns_servers: invalid server "127.0.0.1:65536": expected IP, IP:port or [IPv6]:port' },
    { options: { servers: ['[127.0.0.1]:53'] }, message: 'backstop_dns_servers: invalid server "[127.0.0.1]:53": expected IP, IP:port or [IPv6]:port' },
    { options: { servers: ['::1:53x'] }, message: 'backstop_dns_servers: invalid server "::1:53x": expected IP, IP:port or [IPv6]:port' },
    { options: { timeoutMs: 0 }, message: 'dns: timeoutMs must be positive, got 0' },
    { options: { cacheSize: -1 }, message: 'dns: cacheSize must be 0 or more, got -1' },
  ];
  for (const c of cases) assert.throws(() => new Resolver(c.options), { message: c.message });
  // Accepted forms.
  for (const servers of [['127.0.0.1'], ['127.0.0.1:5300'], ['::1'], ['[::1]:5300'], ['[::1]']]) {
    new Resolver({ servers }).close();
  }
});
