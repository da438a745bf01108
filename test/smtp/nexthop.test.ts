// Next-hop selection: destination syntax, transport(5) keys, the loop rule (truncateSelf) and
// MX resolution against the real loopback DNS server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from '../../src/dns/index.js';
import {
  chooseNextHop, domainAddr, hostAddr, parseDestination, parseDestinations, resolveNextHop, transportKeys, truncateSelf,
  type RoutingOptions,
} from '../../src/smtp/index.js';
import { startDnsServer } from '../helpers/dnsserver.js';

test('parseDestination: Postfix next-hop syntax', () => {
  const cases = [
    { input: 'primary.test', expected: { host: 'primary.test', port: 25, mx: true } },
    { input: 'Primary.Test.:2525', expected: { host: 'primary.test', port: 2525, mx: true } },
    { input: '[mx1.primary.test]', expected: { host: 'mx1.primary.test', port: 25, mx: false } },
    { input: '[127.0.0.2]:2526', expected: { host: '127.0.0.2', port: 2526, mx: false } },
    { input: '[ipv6:::1]:25', expected: { host: '::1', port: 25, mx: false } },
    { input: '[::1]:submission', expected: { host: '::1', port: 587, mx: false } },
    { input: '127.0.0.3:25', expected: { host: '127.0.0.3', port: 25, mx: false } },
    { input: 'primary.test:smtp', expected: { host: 'primary.test', port: 25, mx: true } },
  ];
  for (const c of cases) assert.deepEqual(parseDestination(c.input), c.expected, c.input);
  assert.deepEqual(parseDestinations('[127.0.0.2]:26, backup.test'), [
    { host: '127.0.0.2', port: 26, mx: false },
    { host: 'backup.test', port: 25, mx: true },
  ]);
});

test('parseDestination: bad input gets an exact error', () => {
  const cases = [
    { input: '', msg: 'bad next-hop destination "": empty destination' },
    { input: '[127.0.0.2', msg: 'bad next-hop destination "[127.0.0.2": missing "]"' },
    { input: '[]:25', msg: 'bad next-hop destination "[]:25": empty host name' },
    { input: 'a.test:0', msg: 'bad next-hop destination "a.test:0": port 0 out of range 1..65535' },
    { input: 'a.test:99999', msg: 'bad next-hop destination "a.test:99999": port 99999 out of range 1..65535' },
    { input: 'a.test:nosuch', msg: 'bad next-hop destination "a.test:nosuch": unknown service "nosuch"' },
    { input: 'a.test:', msg: 'bad next-hop destination "a.test:": unexpected ":"' },
    { input: '[h]x', msg: 'bad next-hop destination "[h]x": unexpected "x"' },
    { input: 'bad host!', msg: 'bad next-hop destination "bad host!": invalid host name "bad host!"' },
  ];
  for (const c of cases) assert.throws(() => parseDestination(c.input), { name: 'NextHopSyntaxError', message: c.msg }, c.input);
});

test('transportKeys: transport(5) search order', () => {
  assert.deepEqual(transportKeys('User+Ext@Sub.Primary.Test'), [
    'user+ext@sub.primary.test', 'user@sub.primary.test', 'sub.primary.test', '.primary.test', '.test', '*',
  ]);
  assert.deepEqual(transportKeys('a@b.test'), ['a@b.test', 'b.test', '.test', '*']);
});

test('truncateSelf: keeps only hosts more preferred than ourselves', () => {
  const self = (ip: string) => ip === '127.0.0.1' || ip === '127.0.0.9';
  const mx = (ip: string, pref: number) => ({ ip, pref });
  const cases = [
    { desc: 'we are not listed', input: [mx('127.0.0.2', 10), mx('127.0.0.3', 20)], expected: [mx('127.0.0.2', 10), mx('127.0.0.3', 20)], found: false },
    { desc: 'we are the backup', input: [mx('127.0.0.2', 10), mx('127.0.0.1', 20), mx('127.0.0.3', 30)], expected: [mx('127.0.0.2', 10)], found: true },
    { desc: 'equal preference with us is cut too', input: [mx('127.0.0.2', 10), mx('127.0.0.3', 20), mx('127.0.0.1', 20)], expected: [mx('127.0.0.2', 10)], found: true },
    { desc: 'we are the best MX', input: [mx('127.0.0.1', 10), mx('127.0.0.2', 20)], expected: [], found: true },
    { desc: 'proxy address counts as self', input: [mx('127.0.0.2', 5), mx('127.0.0.9', 10)], expected: [mx('127.0.0.2', 5)], found: true },
  ];
  for (const c of cases) {
    const r = truncateSelf(c.input, self);
    assert.deepEqual(r.list, c.expected, c.desc);
    assert.equal(r.foundSelf, c.found, c.desc);
  }
});

test('MX resolution, loop rule and DNS failures against the loopback DNS server', async () => {
  const dns = await startDnsServer({
    'primary.test': { MX: [[20, 'mx2.backup.test'], [10, 'mx1.primary.test']] },
    'mx1.primary.test': { A: ['127.0.0.2'] },
    'mx2.backup.test': { A: ['127.0.0.1'] },
    'best.test': { MX: [[10, 'mx2.backup.test'], [20, 'mx1.primary.test']] },
    'nobetter.test': { MX: [[10, 'gone.primary.test'], [20, 'mx2.backup.test']] },
    'equal.test': { MX: [[10, 'e1.test'], [10, 'e2.test'], [10, 'e3.test']] },
    'e1.test': { A: ['127.0.0.11'] }, 'e2.test': { A: ['127.0.0.12'] }, 'e3.test': { A: ['127.0.0.13'] },
    'noMx.test': { A: ['127.0.0.5'] },
    'self.test': { A: ['127.0.0.1'] },
    'nullmx.test': { MX: [[0, '.']] },
    'broken.test': 'servfail',
    'v6.test': { MX: [[10, 'mx.v6.test']] },
    'mx.v6.test': { A: ['127.0.0.6'], AAAA: ['::1'] },
  });
  const resolver = new Resolver({ servers: [dns.servers], timeoutMs: 2000 });
  const opts: RoutingOptions = { dns: resolver, isSelf: (ip) => ip === '127.0.0.1', randomize: false, inetProtocols: ['ipv4'] };
  try {
    const d = (host: string, port = 25) => ({ host, port, mx: true });
    assert.deepEqual(await domainAddr(d('primary.test', 2525), opts), { ok: true, addresses: [{ name: 'mx1.primary.test', ip: '127.0.0.2', pref: 10, port: 2525 }] });
    assert.deepEqual(await domainAddr(d('best.test'), opts), { ok: false, failure: { dsn: '5.4.6', text: 'mail for best.test loops back to myself' } });
    assert.deepEqual(await domainAddr(d('nobetter.test'), opts), { ok: false, failure: { dsn: '4.4.4', text: 'unable to find primary relay for nobetter.test' } });
    assert.deepEqual(await domainAddr(d('nomx.test'), opts), { ok: true, addresses: [{ name: 'nomx.test', ip: '127.0.0.5', pref: 0, port: 25 }] });
    assert.deepEqual(await domainAddr(d('self.test'), opts), { ok: false, failure: { dsn: '5.4.6', text: 'mail for self.test loops back to myself' } });
    assert.deepEqual(await domainAddr(d('nullmx.test'), opts), { ok: false, failure: { dsn: '5.1.0', text: 'Domain nullmx.test does not accept mail (nullMX)' } });
    assert.deepEqual(await domainAddr(d('broken.test'), opts), { ok: false, failure: { dsn: '4.4.3', text: 'Host or domain name not found. Name service error for name=broken.test type=MX: Host not found, try again' } });
    assert.deepEqual(await domainAddr(d('nx.test'), opts), { ok: false, failure: { dsn: '5.4.4', text: 'Host or domain name not found. Name service error for name=nx.test type=A: Host not found' } });
    assert.deepEqual(await domainAddr(d('mx1.primary.test'), { ...opts, inetProtocols: ['ipv4', 'ipv6'] }), { ok: true, addresses: [{ name: 'mx1.primary.test', ip: '127.0.0.2', pref: 0, port: 25 }] });
    const v6 = await domainAddr(d('v6.test'), { ...opts, inetProtocols: ['ipv4', 'ipv6'] });
    assert.deepEqual(v6.ok && v6.addresses.map((a) => a.ip), ['127.0.0.6', '::1']);
    const v6only = await domainAddr(d('v6.test'), { ...opts, inetProtocols: ['ipv6'] });
    assert.deepEqual(v6only.ok && v6only.addresses.map((a) => a.ip), ['::1']);
    // [host] skips MX records but still refuses to send to ourselves.
    assert.deepEqual(await hostAddr({ host: 'mx2.backup.test', port: 25, mx: false }, opts), { ok: false, failure: { dsn: '5.4.6', text: 'mail for mx2.backup.test loops back to myself' } });
    // Equal preferences are shuffled (a fixed random source makes the order known).
    const seq = [0.1, 0.9];
    let k = 0;
    const shuffled = await domainAddr(d('equal.test'), { ...opts, randomize: true, random: () => seq[k++ % 2] });
    assert.ok(shuffled.ok);
    assert.deepEqual(shuffled.addresses.map((a) => a.ip).sort(), ['127.0.0.11', '127.0.0.12', '127.0.0.13']);
    assert.notDeepEqual(shuffled.addresses.map((a) => a.ip), ['127.0.0.11', '127.0.0.12', '127.0.0.13']);
  } finally {
    resolver.close();
    await dns.close();
  }
});

test('chooseNextHop: transport_maps, then relayhost, then the recipient domain', async () => {
  const table: Record<string, string> = {
    'primary.test': 'smtp:[127.0.0.2]:2525',
    '.sub.test': 'relay:backup.test:2526',
    'err.test': 'error:5.1.1 no such domain here',
    'later.test': 'retry:try again later',
    'local.test': 'local:',
    'empty.test': 'smtp:',
  };
  const base: Omit<RoutingOptions, 'dns'> = { isSelf: () => false, transportMaps: (k) => table[k] };
  const dns = {} as RoutingOptions['dns'];
  const o = { ...base, dns };
  assert.deepEqual(await chooseNextHop('u@primary.test', o), { transport: 'smtp', destinations: [{ host: '127.0.0.2', port: 2525, mx: false }], source: 'transport_maps', key: '[127.0.0.2]:2525' });
  assert.deepEqual(await chooseNextHop('u@a.sub.test', o), { transport: 'relay', destinations: [{ host: 'backup.test', port: 2526, mx: true }], source: 'transport_maps', key: 'backup.test:2526' });
  assert.deepEqual(await chooseNextHop('u@err.test', o), { dsn: '5.0.0', text: '5.1.1 no such domain here' });
  assert.deepEqual(await chooseNextHop('u@later.test', o), { dsn: '4.0.0', text: 'try again later' });
  assert.deepEqual(await chooseNextHop('u@local.test', o), { dsn: '4.3.0', text: 'mail transport unavailable' });
  assert.deepEqual(await chooseNextHop('u@empty.test', o), { transport: 'smtp', destinations: [{ host: 'empty.test', port: 25, mx: true }], source: 'recipient domain', key: 'empty.test' });
  assert.deepEqual(await chooseNextHop('u@other.test', { ...o, relayhost: '[127.0.0.3]:2527' }), { transport: 'smtp', destinations: [{ host: '127.0.0.3', port: 2527, mx: false }], source: 'relayhost', key: '[127.0.0.3]:2527' });
  assert.deepEqual(await chooseNextHop('u@other.test', { ...o, relayhost: 'relay.test:2528' }), { transport: 'smtp', destinations: [{ host: 'relay.test', port: 2528, mx: true }], source: 'relayhost', key: 'relay.test:2528' });
  assert.deepEqual(await chooseNextHop('u@Other.Test', o), { transport: 'smtp', destinations: [{ host: 'other.test', port: 25, mx: true }], source: 'recipient domain', key: 'other.test' });
  // A bracketed literal needs no DNS at all.
  assert.deepEqual(await resolveNextHop({ transport: 'smtp', destinations: [{ host: '127.0.0.2', port: 26, mx: false }], source: 'relayhost', key: 'x' }, { ...o, randomize: false }), { ok: true, addresses: [{ name: '127.0.0.2', ip: '127.0.0.2', pref: 0, port: 26 }] });
});
