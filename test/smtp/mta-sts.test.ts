// MTA-STS (RFC 8461) over real sockets: the loopback DNS server publishes `_mta-sts` TXT records
// and the policy host's address, an HTTPS server on loopback serves the policy with a test CA's
// certificate, and smtp-server sinks play the MX hosts. enforce, testing, none, MX matching,
// max_age, refresh by policy id, a failed refresh, and smtp_tls_policy_maps winning.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Resolver } from '../../src/dns/index.js';
import { Maillog } from '../../src/log/index.js';
import { TableList } from '../../src/tables/index.js';
import { deliver, MtaStsCache, stsRecordId, type DeliveryOptions, type OutboundMessage, type OutboundTls } from '../../src/smtp/index.js';
import { startDnsServer, type TestDnsServer, type ZoneSpec } from '../helpers/dnsserver.js';
import { makeTestCert, startSink, type Sink, type TestCert } from '../helpers/sink.js';
import { freePort } from '../helpers/net.js';

const log = new Maillog();
log.open(undefined, { quiet: true });
const lines: string[] = [];
log.addSink((r) => lines.push(r.text));

let dns: TestDnsServer;
let resolver: Resolver;
let ca: TestCert;
let https: Server;
let httpsPort: number;
let sinkPort: number;
let good: Sink;
let plain: Sink;
const policies = new Map<string, { body: string; type?: string; status?: number }>();
const fetches: string[] = [];

function zone(stsId = '1', extra: ZoneSpec = {}): ZoneSpec {
  return {
    'sts.test': { MX: [[10, 'mx1.sts.test']] },
    'mx1.sts.test': { A: ['127.0.0.2'] },
    '_mta-sts.sts.test': { TXT: [`v=STSv1; id=${stsId};`] },
    'mta-sts.sts.test': { A: ['127.0.0.4'] },
    // A policy for mx1.sts.test, but the MX record names a plain-text host.
    'badmx.test': { MX: [[10, 'plain.badmx.test']] },
    'plain.badmx.test': { A: ['127.0.0.3'] },
    '_mta-sts.badmx.test': { TXT: ['v=STSv1; id=7'] },
    'mta-sts.badmx.test': { A: ['127.0.0.4'] },
    'plain.test': { MX: [[10, 'mx.plain.test']] },
    'mx.plain.test': { A: ['127.0.0.3'] },
    '_mta-sts.plain.test': { TXT: ['v=STSv1; id=9'] },
    'mta-sts.plain.test': { A: ['127.0.0.4'] },
    ...extra,
  };
}

before(async () => {
  // One self-signed certificate is the CA and names every host of the test.
  ca = makeTestCert(['mx1.sts.test', 'mta-sts.sts.test', 'mta-sts.badmx.test', 'mta-sts.plain.test'], []);
  sinkPort = await freePort('127.0.0.2', '127.0.0.3');
  good = await startSink({ host: '127.0.0.2', port: sinkPort, tls: { key: ca.key, cert: ca.cert } });
  plain = await startSink({ host: '127.0.0.3', port: sinkPort });
  https = createServer({ key: ca.key, cert: ca.cert }, (req, res) => {
    const host = String(req.headers.host ?? '').replace(/:\d+$/, '');
    fetches.push(`${host}${req.url}`);
    const p = policies.get(host);
    if (!p || req.url !== '/.well-known/mta-sts.txt') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(p.status ?? 200, { 'content-type': p.type ?? 'text/plain' }).end(p.body);
  });
  await new Promise<void>((r) => https.listen(0, '127.0.0.4', r));
  httpsPort = (https.address() as AddressInfo).port;
  dns = await startDnsServer(zone());
  resolver = new Resolver({ servers: [dns.servers], timeoutMs: 2000, cacheSize: 0 });
});

after(async () => {
  resolver.close();
  await dns.close();
  await good.close();
  await plain.close();
  await new Promise<void>((r) => https.close(() => r()));
  ca.remove();
});

const policy = (mode: string, mx: string[], maxAge = 86400) => `version: STSv1\r\nmode: ${mode}\r\n${mx.map((m) => `mx: ${m}\r\n`).join('')}max_age: ${maxAge}\r\n`;

function options(sts: MtaStsCache, extra: Partial<OutboundTls> = {}): DeliveryOptions {
  return {
    dns: resolver,
    isSelf: (ip) => ip === '127.0.0.1',
    inetProtocols: ['ipv4'],
    randomize: false,
    defaultPort: sinkPort,
    logger: log.logger('smtp'),
    tls: { level: 'may', protocols: '>=TLSv1', mandatoryProtocols: '>=TLSv1', verifyMatch: ['hostname'], secureMatch: ['nexthop', 'dot-nexthop'], dnssec: false, mtaSts: sts, ...extra },
    session: { heloName: 'mx2.backup.test', tlsCa: ca.cert, timeouts: { smtp_connect_timeout: 2, smtp_helo_timeout: 2, smtp_starttls_timeout: 2 } },
  };
}

function message(rcpt: string): OutboundMessage {
  const content = 'Subject: sts\r\n\r\nhello\r\n';
  return { queueId: 'STS1', sender: 's@client.test', recipients: [{ address: rcpt }], body: () => Readable.from([Buffer.from(content)]), size: content.length };
}

function cache(now?: () => number): MtaStsCache {
  return new MtaStsCache({ dns: resolver, port: httpsPort, ca: ca.cert, log: log.logger('smtp'), timeoutMs: 3000, now });
}

test('the TXT record names the policy id: exactly one v=STSv1 record', () => {
  const cases: Array<[string[], string | undefined]> = [
    [['v=STSv1; id=20160831085700Z;'], '20160831085700Z'],
    [['v=STSv1;id=abc'], 'abc'],
    [['v=spf1 -all', 'v=STSv1; id=x1'], 'x1'],
    [['v=STSv1; id=a', 'v=STSv1; id=b'], undefined],
    [['v=STSv1;'], undefined],
    [['v=STSv1; id=has-dash'], undefined],
    [[], undefined],
  ];
  for (const [records, id] of cases) assert.equal(stsRecordId(records), id, records.join(' | '));
});

test('enforce: verified TLS to a listed MX or defer; testing: log only; an explicit policy-table entry wins', async () => {
  policies.set('mta-sts.sts.test', { body: policy('enforce', ['mx1.sts.test']) });
  policies.set('mta-sts.badmx.test', { body: policy('enforce', ['mx1.sts.test', '*.elsewhere.test']) });
  policies.set('mta-sts.plain.test', { body: policy('testing', ['mx1.plain.test']) });
  const sts = cache();
  lines.length = 0;
  const [a] = await deliver(message('u@sts.test'), options(sts));
  assert.equal(a.status, 'sent', a.text);
  assert.ok(lines.some((l) => /^Verified TLS connection established to mx1\.sts\.test\[127\.0\.0\.2\]:\d+: TLSv1\.3/.test(l)), lines.join('\n'));
  assert.ok(lines.includes('MTA-STS policy for sts.test: id=1 mode=enforce max_age=86400'), lines.join('\n'));
  // The MX host is not in the policy: defer before connecting, nothing sent in plain text.
  const [b] = await deliver(message('u@badmx.test'), options(sts));
  assert.deepEqual([b.status, b.dsn, b.text, b.relay], ['deferred', '4.7.5', 'MX host plain.badmx.test does not match the MTA-STS policy of badmx.test', 'none']);
  assert.equal(plain.messages.length, 0);
  // testing: the mismatch is logged, the mail goes (in plain text: the host offers no TLS).
  lines.length = 0;
  const [c] = await deliver(message('u@plain.test'), options(sts));
  assert.equal(c.status, 'sent');
  assert.ok(lines.includes('MTA-STS policy of plain.test (testing): MX host mx.plain.test does not match'), lines.join('\n'));
  assert.equal(plain.messages.length, 1);
  // enforce with a matching MX that has no TLS: defer, never plain text.
  policies.set('mta-sts.plain.test', { body: policy('enforce', ['mx.plain.test']) });
  dns.set(zone('1', { '_mta-sts.plain.test': { TXT: ['v=STSv1; id=10'] } }));
  const [d] = await deliver(message('u@plain.test'), options(cache()));
  assert.deepEqual([d.status, d.dsn, d.text], ['deferred', '4.7.4', 'TLS is required, but was not offered by host mx.plain.test[127.0.0.3]']);
  assert.equal(plain.messages.length, 1);
  // smtp_tls_policy_maps names the destination: its entry wins over the MTA-STS policy.
  const file = join(ca.dir, 'tls_policy');
  writeFileSync(file, 'plain.test may\n');
  const t = TableList.open([`texthash:${file}`]);
  const [e] = await deliver(message('u@plain.test'), options(cache(), { policyMaps: (k) => t.get(k) }));
  assert.equal(e.status, 'sent');
  assert.equal(plain.messages.length, 2);
  dns.set(zone());
});

test('enforce with a certificate that does not name the MX host: defer with the policy named', async () => {
  const wrong = makeTestCert(['someone-else.test'], []);
  const port = await freePort('127.0.0.5');
  const sink = await startSink({ host: '127.0.0.5', port, tls: { key: wrong.key, cert: wrong.cert } });
  try {
    policies.set('mta-sts.sts.test', { body: policy('enforce', ['mx1.sts.test']) });
    dns.set(zone('1', { 'mx1.sts.test': { A: ['127.0.0.5'] } }));
    const opts = options(cache());
    opts.defaultPort = port;
    opts.session.tlsCa = [ca.cert, wrong.cert].join('');
    const [r] = await deliver(message('u@sts.test'), opts);
    assert.deepEqual([r.status, r.dsn, r.text], ['deferred', '4.7.5', 'Server certificate not verified (MTA-STS policy of sts.test)']);
    assert.equal(sink.messages.length, 0);
  } finally {
    dns.set(zone());
    await sink.close();
    wrong.remove();
  }
});

test('policy cache: max_age, refresh when the TXT id changes, a failed refresh keeps the known policy', async () => {
  let clock = Date.now();
  const sts = cache(() => clock);
  policies.set('mta-sts.sts.test', { body: policy('enforce', ['mx1.sts.test'], 3600) });
  fetches.length = 0;
  assert.equal((await sts.policy('sts.test'))?.mode, 'enforce');
  assert.equal((await sts.policy('sts.test'))?.mode, 'enforce');
  assert.equal(fetches.length, 1, 'cached');
  // Same id a while later: still no fetch.
  clock += 120_000;
  assert.equal((await sts.policy('sts.test'))?.mode, 'enforce');
  assert.equal(fetches.length, 1);
  // New id: the new policy is fetched.
  policies.set('mta-sts.sts.test', { body: policy('testing', ['mx1.sts.test'], 3600) });
  dns.set(zone('2'));
  clock += 120_000;
  assert.equal((await sts.policy('sts.test'))?.mode, 'testing');
  assert.equal(fetches.length, 2);
  // Another id but the policy host fails: the known policy stands (no downgrade by blocking).
  policies.set('mta-sts.sts.test', { body: 'oops', status: 500 });
  dns.set(zone('3'));
  clock += 120_000;
  lines.length = 0;
  assert.equal((await sts.policy('sts.test'))?.mode, 'testing');
  assert.ok(lines.some((l) => l === 'warning: MTA-STS policy for sts.test: cannot fetch https://mta-sts.sts.test/.well-known/mta-sts.txt: HTTP status 500'), lines.join('\n'));
  // max_age over and nothing to fetch: no policy.
  dns.set(zone('4', { '_mta-sts.sts.test': 'nxdomain' }));
  clock += 3_600_000;
  assert.equal(await sts.policy('sts.test'), undefined);
  // A fresh cache with no policy published at all.
  assert.equal(await cache().policy('sts.test'), undefined);
  // Not text/plain, or an invalid policy: no policy for a domain we knew nothing about.
  dns.set(zone('5'));
  policies.set('mta-sts.sts.test', { body: policy('enforce', ['mx1.sts.test']), type: 'text/html' });
  assert.equal(await cache().policy('sts.test'), undefined);
  policies.set('mta-sts.sts.test', { body: 'version: STSv1\r\nmode: enforce\r\nmax_age: 60\r\n' });
  lines.length = 0;
  assert.equal(await cache().policy('sts.test'), undefined);
  assert.ok(lines.some((l) => /cannot fetch .*: Missing mx field$/.test(l)), lines.join('\n'));
  dns.set(zone());
});
