// Pure helpers of the dns module: IP reversal, DNSBL reply filters, the TTL LRU and
// in-flight map, error classification, name checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  classify,
  normaliseIp,
  parseRblFilter,
  ptrName,
  queryName,
  rblFilterMatches,
  reverseIp,
} from '../../src/dns/index.js';
import { hostnameProblem } from '../../src/mail/index.js';
import { InFlight, TtlLru } from '../../src/dns/cache.js';

test('reverseIp / ptrName / normaliseIp', () => {
  const cases = [
    { ip: '1.2.3.4', reversed: '4.3.2.1', ptr: '4.3.2.1.in-addr.arpa', normal: '1.2.3.4' },
    { ip: '::ffff:1.2.3.4', reversed: '4.3.2.1', ptr: '4.3.2.1.in-addr.arpa', normal: '1.2.3.4' },
    {
      ip: '2001:DB8::567:89ab',
      reversed: 'b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2',
      ptr: 'b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa',
      normal: '2001:db8::567:89ab',
    },
    {
      ip: '[::1]',
      reversed: '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0',
      ptr: '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa',
      normal: '::1',
    },
  ];
  for (const c of cases) {
    assert.equal(reverseIp(c.ip), c.reversed, c.ip);
    assert.equal(ptrName(c.ip), c.ptr, c.ip);
    assert.equal(normaliseIp(c.ip), c.normal, c.ip);
  }
  assert.equal(normaliseIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  assert.equal(normaliseIp('2001:0db8:0001:0000:0000:0000:0000:0000'), '2001:db8:1::');
  assert.equal(normaliseIp('1:2:3:4:5:6:7:8'), '1:2:3:4:5:6:7:8');
  for (const bad of ['1.2.3', '1.2.3.256', 'example.test', '', 'fe80::1%eth0', '1:2:3:4:5:6:7:8:9']) {
    assert.throws(() => reverseIp(bad), { name: 'TypeError', message: `not an IP address: "${bad}"` });
  }
});

test('parseRblFilter / rblFilterMatches', () => {
  const cases = [
    { filter: '127.0.0.2', yes: ['127.0.0.2'], no: ['127.0.0.3', '127.0.1.2'] },
    { filter: '127.0.0.[2;4..6;11]', yes: ['127.0.0.2', '127.0.0.4', '127.0.0.6', '127.0.0.11'], no: ['127.0.0.3', '127.0.0.7', '127.0.0.10'] },
    { filter: '127.[0..1].0.[1..255]', yes: ['127.1.0.9'], no: ['127.2.0.9', '127.0.0.0'] },
  ];
  for (const c of cases) {
    const f = parseRblFilter(c.filter);
    for (const a of c.yes) assert.equal(rblFilterMatches(f, a), true, `${c.filter} ${a}`);
    for (const a of c.no) assert.equal(rblFilterMatches(f, a), false, `${c.filter} ${a}`);
  }
  assert.equal(rblFilterMatches(parseRblFilter('127.0.0.2'), '::1'), false);
  const bad: Array<[string, string]> = [
    ['127.0.0', 'expected d.d.d.d'],
    ['127.0.0.2.1', 'expected d.d.d.d'],
    ['127.0.0.256', 'bad octet "256"'],
    ['127.0.0.x', 'bad octet "x"'],
    ['127.0.0.', 'bad octet ""'],
    ['127.0.0.[2', 'unbalanced "[" "]"'],
    ['127.0.0.2]', 'unbalanced "[" "]"'],
    ['127.0.0.[[2]]', 'unbalanced "[" "]"'],
    ['127.0.0.[]', 'empty "[]"'],
    ['127.0.0.[6..4]', 'bad range "6..4"'],
    ['127.0.0.[1..2..3]', 'bad range "1..2..3"'],
    ['127.0.0.[2]x', 'bad octet "[2]x"'],
  ];
  for (const [filter, why] of bad) {
    assert.throws(() => parseRblFilter(filter), { message: `invalid DNSBL reply filter "${filter}": ${why}` }, filter);
  }
});

test('classify: only NXDOMAIN and NODATA are permanent; unknown means temporary', () => {
  const err = (code?: string) => Object.assign(new Error(`query ${code}`), code ? { code } : {});
  assert.deepEqual(classify(err('ENOTFOUND')), { status: 'notFound' });
  assert.deepEqual(classify(err('EBADNAME')), { status: 'notFound' });
  assert.deepEqual(classify(err('ENODATA')), { status: 'noData' });
  for (const code of ['ESERVFAIL', 'ETIMEOUT', 'ECONNREFUSED', 'EREFUSED', 'ECANCELLED', 'EBADRESP', 'ESOMETHINGNEW']) {
    assert.deepEqual(classify(err(code)), { status: 'tempFail', error: { code, message: `query ${code}` } });
  }
  assert.deepEqual(classify(err()), { status: 'tempFail', error: { code: 'EUNKNOWN', message: 'query undefined' } });
  assert.deepEqual(classify('weird'), { status: 'tempFail', error: { code: 'EUNKNOWN', message: 'weird' } });
});

test('queryName and hostnameProblem', () => {
  assert.equal(queryName('Example.TEST.'), 'example.test');
  assert.equal(queryName('_dmarc.example.test'), '_dmarc.example.test');
  for (const bad of ['', '.', 'a..b', '.a', 'a b', 'x'.repeat(64), `${'a.'.repeat(127)}ab`, 'tab\there']) {
    assert.equal(queryName(bad), undefined, JSON.stringify(bad));
  }
  assert.equal(hostnameProblem('mail-1.example.test'), undefined);
  assert.equal(hostnameProblem('under_score.test'), undefined);
  const cases: Array<[string, string]> = [
    ['1.2.3.4', 'numeric hostname: 1.2.3.4'],
    ['::1', 'numeric hostname: ::1'],
    ['123.456', 'numeric hostname: 123.456'],
    ['-a.test', 'valid_hostname: misplaced hyphen: -a.test'],
    ['a-.test', 'valid_hostname: misplaced hyphen: a-.test'],
    ['a..test', 'valid_hostname: misplaced delimiter: a..test'],
    ['a*b.test', 'valid_hostname: invalid character 42(decimal): a*b.test'],
    [`${'x'.repeat(64)}.test`, `valid_hostname: hostname label too long: ${'x'.repeat(64)}.test`],
  ];
  for (const [name, problem] of cases) assert.equal(hostnameProblem(name), problem, name);
});

test('TtlLru: expiry, recency, bound; InFlight: shares and forgets', async () => {
  let now = 0;
  const lru = new TtlLru<string>(2, () => now);
  lru.set('a', 'A', 10);
  lru.set('b', 'B', 10);
  assert.equal(lru.get('a'), 'A'); // a is now most recent
  lru.set('c', 'C', 10); // evicts b
  assert.equal(lru.get('b'), undefined);
  assert.equal(lru.get('a'), 'A');
  assert.equal(lru.size, 2);
  now = 10;
  assert.equal(lru.get('a'), undefined);
  lru.set('z', 'Z', 0);
  assert.equal(lru.get('z'), undefined);

  const inflight = new InFlight<number>();
  let calls = 0;
  let release!: (n: number) => void;
  const fn = () => {
    calls++;
    return new Promise<number>((resolve) => (release = resolve));
  };
  const p1 = inflight.run('k', fn);
  const p2 = inflight.run('k', fn);
  assert.equal(p1, p2);
  assert.equal(inflight.size, 1);
  release(7);
  assert.deepEqual(await Promise.all([p1, p2]), [7, 7]);
  assert.equal(inflight.size, 0);
  const p3 = inflight.run('k', fn);
  release(8);
  assert.equal(await p3, 8);
  assert.equal(calls, 2);
});
