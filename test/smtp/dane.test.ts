// DANE (RFC 7672) end to end with a real validating resolver: unbound on loopback serves signed
// test zones (ldns-signzone, the zone keys as trust anchors), an unsigned zone and a bogus one;
// both the routing lookups and the TLSA lookups go to it; smtp-server sinks with test
// certificates play the MX hosts. Cases: good DANE-EE and DANE-TA records, a wrong record, no
// records, unusable records, an unsigned zone, a bogus signature, dane-only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Resolver, SecureDns } from '../../src/dns/index.js';
import { Maillog } from '../../src/log/index.js';
import { deliver, type DeliveryOptions, type OutboundMessage, type OutboundTls } from '../../src/smtp/index.js';
import { makeTestCert, startSink, type Sink, type TestCert } from '../helpers/sink.js';
import { freePort } from '../helpers/net.js';
import { requireUnbound, startUnbound, type TestUnbound } from '../helpers/unbound.js';

const log = new Maillog();
log.open(undefined, { quiet: true });
const lines: string[] = [];
log.addSink((r) => lines.push(r.text));

let unbound: TestUnbound;
let resolver: Resolver;
let secureDns: SecureDns;
let ee: TestCert;
let chainDir: string;
let sinkEE: Sink;
let sinkTA: Sink;

/** A CA and a server certificate it issued for `name` (DANE-TA). */
function makeChain(name: string): { dir: string; key: string; chain: string; caDer: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-chain-'));
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore', timeout: 10_000 });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Test DANE CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${name}`]);
  writeFileSync(join(dir, 'leaf.ext'), `subjectAltName=DNS:${name}\n`);
  run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'leaf.ext']);
  return { dir, key: readFileSync(join(dir, 'leaf.key'), 'utf8'), chain: readFileSync(join(dir, 'leaf.pem'), 'utf8') + readFileSync(join(dir, 'ca.pem'), 'utf8'), caDer: new X509Certificate(readFileSync(join(dir, 'ca.pem'))).raw };
}

before(async () => {
  requireUnbound();
  ee = makeTestCert(['mx.dane.test'], []);
  const ta = makeChain('ta.dane.test');
  chainDir = ta.dir;
  const port = await freePort('127.0.0.2', '127.0.0.3');
  sinkEE = await startSink({ host: '127.0.0.2', port, tls: { key: ee.key, cert: ee.cert } });
  sinkTA = await startSink({ host: '127.0.0.3', port, tls: { key: ta.key, cert: ta.chain } });
  const spki = createHash('sha256').update(new X509Certificate(ee.cert).publicKey.export({ type: 'spki', format: 'der' }) as Buffer).digest('hex');
  const caHash = createHash('sha256').update(ta.caDer).digest('hex');
  const tlsa = (host: string, rdata: string) => `_${port}._tcp.${host} IN TLSA ${rdata}`;
  const zero = '00'.repeat(32);
  unbound = await startUnbound([
    {
      name: 'dane.test',
      records: [
        '@ IN MX 10 mx', 'mx IN A 127.0.0.2', tlsa('mx', `3 1 1 ${spki}`),
        'wrong IN MX 10 wrongmx', 'wrongmx IN A 127.0.0.2', tlsa('wrongmx', `3 1 1 ${zero}`),
        'none IN MX 10 notlsa', 'notlsa IN A 127.0.0.2',
        'pkix IN MX 10 pkixmx', 'pkixmx IN A 127.0.0.2', tlsa('pkixmx', `1 1 1 ${spki}`),
        'ta IN MX 10 ta', 'ta IN A 127.0.0.3', tlsa('ta', `2 0 1 ${caHash}`),
      ],
    },
    { name: 'plain.test', signed: false, records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.2', tlsa('mx', `3 1 1 ${zero}`)] },
    {
      name: 'bogus.test',
      records: ['@ IN MX 10 mx', 'mx IN A 127.0.0.2', tlsa('mx', `3 1 1 ${spki}`)],
      // Replace the signed TLSA data: its RRSIG no longer verifies.
      tamper: (text) => text.replace(new RegExp(spki, 'i'), zero).replace(spki.toUpperCase(), zero),
    },
  ]);
  resolver = new Resolver({ servers: [unbound.server], timeoutMs: 3000 });
  secureDns = new SecureDns({ servers: [unbound.server], timeoutMs: 3000 });
});

after(async () => {
  resolver?.close();
  await sinkEE?.close();
  await sinkTA?.close();
  await unbound?.close();
  ee?.remove();
  if (chainDir) rmSync(chainDir, { recursive: true, force: true });
});

function options(level: string): DeliveryOptions {
  const tls: OutboundTls = { level, protocols: '>=TLSv1', mandatoryProtocols: '>=TLSv1', verifyMatch: ['hostname'], secureMatch: ['nexthop', 'dot-nexthop'], dnssec: true, secureDns };
  return {
    dns: resolver,
    isSelf: (ip) => ip === '127.0.0.1',
    inetProtocols: ['ipv4'],
    randomize: false,
    defaultPort: sinkEE.port,
    logger: log.logger('smtp'),
    tls,
    session: { heloName: 'mx2.backup.test', timeouts: { smtp_connect_timeout: 2, smtp_helo_timeout: 2, smtp_starttls_timeout: 2 } },
  };
}

function message(rcpt: string): OutboundMessage {
  const content = 'Subject: dane\r\n\r\nhello\r\n';
  return { queueId: 'DANE1', sender: 's@client.test', recipients: [{ address: rcpt }], body: () => Readable.from([Buffer.from(content)]), size: content.length };
}

test('the resolver reports DNSSEC status: secure, insecure, bogus', async () => {
  const a = await secureDns.query('mx.dane.test', 'A');
  assert.deepEqual(a, { status: 'ok', records: ['127.0.0.2'], ttl: 300, secure: true });
  const insecure = await secureDns.query('mx.plain.test', 'A');
  assert.equal(insecure.status, 'ok');
  assert.equal((insecure as { secure: boolean }).secure, false);
  const bogus = await secureDns.tlsa('mx.bogus.test', sinkEE.port);
  assert.equal(bogus.status, 'tempFail');
  assert.equal((await secureDns.query('nothing.dane.test', 'A')).status, 'notFound');
});

test('DANE levels against real peers, each case as Postfix decides it', async () => {
  const p = () => sinkEE.port;
  const cases: Array<{ desc: string; level: string; rcpt: string; status: string; text?: string; line?: RegExp }> = [
    { desc: 'DANE-EE record matches', level: 'dane', rcpt: 'u@dane.test', status: 'sent', line: /^Verified TLS connection established to mx\.dane\.test\[127\.0\.0\.2\]:\d+: TLSv1\.3 with cipher / },
    { desc: 'DANE-TA record matches the issuer; the name matches', level: 'dane', rcpt: 'u@ta.dane.test', status: 'sent', line: /^Verified TLS connection established to ta\.dane\.test\[127\.0\.0\.3\]/ },
    { desc: 'wrong TLSA record', level: 'dane', rcpt: 'u@wrong.dane.test', status: 'deferred', text: 'Server certificate not verified', line: /^certificate verification failed for wrongmx\.dane\.test\[127\.0\.0\.2\]:\d+: the server certificate matches no DANE-EE TLSA record$/ },
    { desc: 'no TLSA records: may', level: 'dane', rcpt: 'u@none.dane.test', status: 'sent', line: /^notlsa\.dane\.test\[127\.0\.0\.2\]:\d+: no TLSA records found, resorting to "may"$/ },
    { desc: 'unusable (PKIX-EE) records: encrypt', level: 'dane', rcpt: 'u@pkix.dane.test', status: 'sent', line: /^pkixmx\.dane\.test\[127\.0\.0\.2\]:\d+: TLSA records unusable, resorting to "encrypt"$/ },
    { desc: 'unsigned zone: its TLSA records are ignored', level: 'dane', rcpt: 'u@plain.test', status: 'sent', line: /^mx\.plain\.test\[127\.0\.0\.2\]:\d+: non DNSSEC destination, resorting to "may"$/ },
    { desc: 'bogus signature: defer', level: 'dane', rcpt: 'u@bogus.test', status: 'deferred', text: `TLSA lookup error for mx.bogus.test:${p()}` },
    { desc: 'dane-only, unsigned zone: defer', level: 'dane-only', rcpt: 'u@plain.test', status: 'deferred', text: 'non DNSSEC destination' },
    { desc: 'dane-only, good record', level: 'dane-only', rcpt: 'u@dane.test', status: 'sent', line: /^Verified TLS connection established to mx\.dane\.test/ },
  ];
  for (const c of cases) {
    lines.length = 0;
    const before = sinkEE.messages.length + sinkTA.messages.length;
    const [r] = await deliver(message(c.rcpt), options(c.level));
    assert.equal(r.status, c.status, `${c.desc}: ${r.text}\n${lines.join('\n')}`);
    if (c.text) assert.deepEqual([r.dsn, r.text], ['4.7.5', c.text], c.desc);
    if (c.line) assert.ok(lines.some((l) => c.line!.test(l)), `${c.desc}:\n${lines.join('\n')}`);
    const after = sinkEE.messages.length + sinkTA.messages.length;
    assert.equal(after - before, c.status === 'sent' ? 1 : 0, c.desc);
  }
  // Whatever DANE decided, every message travelled over TLS (the sinks offer it).
  assert.ok([...sinkEE.messages, ...sinkTA.messages].every((m) => m.secure));
});

test('dane without DNSSEC lookups (smtp_dns_support_level) is opportunistic TLS, with a warning', async () => {
  lines.length = 0;
  const opts = options('dane');
  opts.tls = { ...opts.tls!, dnssec: false };
  const [r] = await deliver(message('u@wrong.dane.test'), opts);
  assert.equal(r.status, 'sent', r.text);
  assert.ok(lines.some((l) => l === 'warning: wrong.dane.test: dane configured with dnssec lookups disabled'), lines.join('\n'));
});
