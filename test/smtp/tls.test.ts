// Outbound TLS as Postfix's smtp(8) applies it, over real sockets: smtp-server sinks with test
// certificates on 127.0.0.2/.3, a raw peer whose TLS handshake fails, the loopback DNS server,
// and smtp_tls_policy_maps as a real texthash: table. Every level and every policy source is
// checked for what it must never do: send mail in plain text when the policy asks for TLS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Resolver } from '../../src/dns/index.js';
import { Maillog } from '../../src/log/index.js';
import { TableList } from '../../src/tables/index.js';
import { ConnectionCache, deliver, lookupTlsPolicy, parsePolicyEntry, protocolRange, type DeliveryOptions, type OutboundMessage, type OutboundTls } from '../../src/smtp/index.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dnsserver.js';
import { runCli } from '../helpers/cli.js';
import { Config } from '../../src/config/index.js';
import { deliveryOptions, outboundTls } from '../../src/master/wiring.js';
import { makeTestCert, startSink, type TestCert } from '../helpers/sink.js';

let dns: TestDnsServer;
let resolver: Resolver;
let cert: TestCert;
let other: TestCert;
const log = new Maillog();
log.open(undefined, { quiet: true });
const lines: string[] = [];
log.addSink((r) => lines.push(r.text));

before(async () => {
  cert = makeTestCert(['mx1.primary.test'], ['127.0.0.2']);
  other = makeTestCert(['elsewhere.test'], []);
  dns = await startDnsServer({
    'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
    'mx1.primary.test': { A: ['127.0.0.2'] },
    'mx2.backup.test': { A: ['127.0.0.1'] },
    'sub.primary.test': { MX: [[10, 'mx1.primary.test']] },
    'bad.test': { MX: [[10, 'mx1.primary.test']] },
  });
  resolver = new Resolver({ servers: [dns.servers], timeoutMs: 2000 });
});

after(async () => {
  resolver.close();
  await dns.close();
  cert.remove();
  other.remove();
});

function tlsCfg(extra: Partial<OutboundTls> = {}): OutboundTls {
  return {
    level: 'may',
    protocols: '>=TLSv1',
    mandatoryProtocols: '>=TLSv1',
    verifyMatch: ['hostname'],
    secureMatch: ['nexthop', 'dot-nexthop'],
    dnssec: false,
    ...extra,
  };
}

function options(port: number, tls: OutboundTls, extra: Partial<DeliveryOptions> = {}): DeliveryOptions {
  return {
    dns: resolver,
    isSelf: (ip) => ip === '127.0.0.1',
    inetProtocols: ['ipv4'],
    randomize: false,
    defaultPort: port,
    logger: log.logger('smtp'),
    tls,
    session: { heloName: 'mx2.backup.test', tlsCa: cert.cert, timeouts: { smtp_connect_timeout: 2, smtp_helo_timeout: 2, smtp_starttls_timeout: 2, smtp_data_done_timeout: 2 } },
    ...extra,
  };
}

function message(rcpt: string, extra: Partial<OutboundMessage> = {}): OutboundMessage {
  const content = 'Subject: tls\r\n\r\nhello\r\n';
  return { queueId: 'TLS1', sender: 's@client.test', recipients: [{ address: rcpt }], body: () => Readable.from([Buffer.from(content)]), size: content.length, ...extra };
}

function tableFile(text: string): string {
  const file = join(cert.dir, `policy-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, text);
  return `texthash:${file}`;
}

function policyMaps(text: string): Pick<OutboundTls, 'policyMaps' | 'policyMapsTitle'> {
  const ref = tableFile(text);
  const t = TableList.open([ref]);
  return { policyMaps: (k) => t.get(k), policyMapsTitle: ref };
}

test('levels against real peers: what each requires, the Postfix log line, never plain text when TLS is required', async () => {
  const good = await startSink({ tls: { key: cert.key, cert: cert.cert } });
  const wrongName = await startSink({ host: '127.0.0.3', tls: { key: other.key, cert: other.cert } });
  const plain = await startSink({ host: '127.0.0.3' });
  try {
    const cases: Array<{ desc: string; level: string; port: number; relay?: string; status: string; text?: RegExp; line?: RegExp; plainSink?: boolean }> = [
      { desc: 'may, trusted CA', level: 'may', port: good.port, status: 'sent', line: /^Trusted TLS connection established to mx1\.primary\.test\[127\.0\.0\.2\]:\d+: TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384 \(256\/256 bits\)$/ },
      { desc: 'may, unknown CA', level: 'may', port: wrongName.port, relay: '127.0.0.3', status: 'sent', line: /^Untrusted TLS connection established to 127\.0\.0\.3\[127\.0\.0\.3\]:\d+: TLSv1\.3/ },
      { desc: 'may, no STARTTLS', level: 'may', port: plain.port, relay: '127.0.0.3', status: 'sent', plainSink: true },
      { desc: 'encrypt, no STARTTLS', level: 'encrypt', port: plain.port, relay: '127.0.0.3', status: 'deferred', text: /^TLS is required, but was not offered by host 127\.0\.0\.3\[127\.0\.0\.3\]$/ },
      { desc: 'encrypt, unknown CA is fine', level: 'encrypt', port: wrongName.port, relay: '127.0.0.3', status: 'sent', line: /^Untrusted TLS connection established/ },
      { desc: 'verify, MX name matches', level: 'verify', port: good.port, status: 'sent', line: /^Verified TLS connection established to mx1\.primary\.test\[127\.0\.0\.2\]/ },
      { desc: 'verify, untrusted', level: 'verify', port: wrongName.port, relay: '127.0.0.3', status: 'deferred', text: /^Server certificate not verified$/, line: /^certificate verification failed for 127\.0\.0\.3\[127\.0\.0\.3\]:\d+: untrusted issuer/ },
      { desc: 'secure, nexthop/dot-nexthop', level: 'secure', port: good.port, status: 'sent', line: /^Verified TLS connection established to mx1\.primary\.test/ },
      { desc: 'secure, no STARTTLS', level: 'secure', port: plain.port, relay: '127.0.0.3', status: 'deferred', text: /^TLS is required, but was not offered/ },
    ];
    for (const c of cases) {
      lines.length = 0;
      const plainBefore = plain.messages.length;
      const relayhost = c.relay ? { relayhost: `[${c.relay}]:${c.port}` } : {};
      const [r] = await deliver(message('u@primary.test'), options(c.port, tlsCfg({ level: c.level }), relayhost));
      assert.equal(r.status, c.status, `${c.desc}: ${r.text}`);
      if (c.text) assert.match(r.text, c.text, c.desc);
      if (c.status === 'deferred') assert.equal(r.dsn.slice(0, 4), '4.7.', c.desc);
      if (c.line) assert.ok(lines.some((l) => c.line!.test(l)), `${c.desc}:\n${lines.join('\n')}`);
      if (!c.plainSink) assert.equal(plain.messages.length, plainBefore, `${c.desc}: nothing in plain text`);
    }
    assert.ok(good.messages.every((m) => m.secure) && wrongName.messages.every((m) => m.secure));
  } finally {
    await good.close();
    await wrongName.close();
    await plain.close();
  }
});

/**
 * A peer that offers STARTTLS and then answers the handshake with garbage (or, with `refuse`,
 * answers STARTTLS itself with 454); plain SMTP otherwise.
 */
async function brokenTlsPeer(refuse = false): Promise<{ port: number; delivered: number; connections: number; close(): Promise<void> }> {
  const state = { delivered: 0, connections: 0 };
  const socks = new Set<Socket>();
  const server: Server = createServer((s) => {
    state.connections++;
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => undefined);
    let inData = false;
    let tls = false;
    let buf = '';
    s.write('220 broken.test ESMTP\r\n');
    s.on('data', (d) => {
      // The client's first TLS record (ClientHello) gets an answer that is not TLS.
      if (tls) return void s.end('this is not a TLS record\r\n');
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            state.delivered++;
            s.write('250 2.0.0 Ok: queued\r\n');
          }
          continue;
        }
        const cmd = line.slice(0, 4).toUpperCase();
        if (cmd === 'EHLO') s.write('250-broken.test\r\n250 STARTTLS\r\n');
        else if (cmd === 'STAR' && refuse) s.write('454 4.7.0 TLS not available due to local problem\r\n');
        else if (cmd === 'STAR') { tls = true; s.write('220 2.0.0 Ready to start TLS\r\n'); }
        else if (cmd === 'DATA') { inData = true; s.write('354 go ahead\r\n'); }
        else if (cmd === 'QUIT') { s.end('221 2.0.0 Bye\r\n'); }
        else s.write('250 2.0.0 Ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.3', r));
  return {
    port: (server.address() as AddressInfo).port,
    get delivered() { return state.delivered; },
    get connections() { return state.connections; },
    close: () => new Promise<void>((r) => { for (const s of socks) s.destroy(); server.close(() => r()); }),
  };
}

test('a failed handshake: may defers new mail and retries older mail in plain text; encrypt never does', async () => {
  const peer = await brokenTlsPeer();
  try {
    const relay = { relayhost: `[127.0.0.3]:${peer.port}`, minimalBackoffSec: 300 };
    lines.length = 0;
    const [fresh] = await deliver(message('u@primary.test'), options(peer.port, tlsCfg({ level: 'may' }), relay));
    assert.deepEqual([fresh.status, fresh.dsn, fresh.text], ['deferred', '4.7.5', 'Cannot start TLS: handshake failure']);
    assert.ok(lines.some((l) => l.startsWith(`SSL_connect error to 127.0.0.3[127.0.0.3]:${peer.port}: `)), lines.join('\n'));
    assert.equal(peer.delivered, 0);
    const old = Date.now() - 400_000;
    const [retried] = await deliver(message('u@primary.test', { arrivalTime: old, activeTime: Date.now() }), options(peer.port, tlsCfg({ level: 'may' }), relay));
    assert.equal(retried.status, 'sent', retried.text);
    assert.equal(peer.delivered, 1, 'delivered over the second, plain-text connection');
    const connections = peer.connections;
    const [enc] = await deliver(message('u@primary.test', { arrivalTime: old, activeTime: Date.now() }), options(peer.port, tlsCfg({ level: 'encrypt' }), relay));
    assert.deepEqual([enc.status, enc.dsn, enc.text], ['deferred', '4.7.5', 'Cannot start TLS: handshake failure']);
    assert.equal(peer.connections, connections + 1, 'no second connection at encrypt');
    assert.equal(peer.delivered, 1);
  } finally {
    await peer.close();
  }
});

test('STARTTLS refused: may goes on in plain text, encrypt defers with the reply', async () => {
  const peer = await brokenTlsPeer(true);
  try {
    const relay = { relayhost: `[127.0.0.3]:${peer.port}` };
    const [may] = await deliver(message('u@primary.test'), options(peer.port, tlsCfg({ level: 'may' }), relay));
    assert.equal(may.status, 'sent');
    assert.equal(peer.delivered, 1);
    const [enc] = await deliver(message('u@primary.test'), options(peer.port, tlsCfg({ level: 'encrypt' }), relay));
    assert.deepEqual([enc.status, enc.dsn, enc.text], ['deferred', '4.7.0', 'TLS is required, but host 127.0.0.3[127.0.0.3] refused to start TLS: 454 4.7.0 TLS not available due to local problem']);
    assert.equal(peer.delivered, 1);
  } finally {
    await peer.close();
  }
});

test('smtp_tls_policy_maps: next hop verbatim, then parent domains; entries win over the global level', async () => {
  const good = await startSink({ tls: { key: cert.key, cert: cert.cert } });
  const plain = await startSink({ host: '127.0.0.3' });
  try {
    const maps = policyMaps([
      '# Postfix syntax',
      'primary.test     secure match=.primary.test',
      '.primary.test    encrypt',
      `[127.0.0.3]:${plain.port}  encrypt protocols=>=TLSv1.2`,
      'bad.test         verify match=',
    ].join('\n') + '\n');
    // Global none, table says secure for primary.test: Verified through the table's match=.
    lines.length = 0;
    const [a] = await deliver(message('u@primary.test'), options(good.port, tlsCfg({ level: 'none', ...maps })));
    assert.equal(a.status, 'sent', a.text);
    assert.ok(lines.some((l) => /^Verified TLS connection established to mx1\.primary\.test/.test(l)), lines.join('\n'));
    // A relayhost next hop is looked up verbatim ("[host]:port") and never as a parent domain.
    const [b] = await deliver(message('u@primary.test'), options(plain.port, tlsCfg({ level: 'may', ...maps }), { relayhost: `[127.0.0.3]:${plain.port}` }));
    assert.deepEqual([b.status, b.text], ['deferred', `TLS is required, but was not offered by host 127.0.0.3[127.0.0.3]`]);
    assert.equal(plain.messages.length, 0);
    // Policy lookups as data.
    const lookup = async (dest: string) => lookupTlsPolicy(dest, { level: 'may', maps: maps.policyMaps });
    assert.deepEqual(await lookup('sub.primary.test'), { level: 'encrypt', source: 'smtp_tls_policy_maps, next-hop destination "sub.primary.test"' });
    assert.equal(((await lookup('primary.test')) as { level: string }).level, 'secure');
    assert.deepEqual(await lookup('other.test'), { level: 'may', source: 'smtp_tls_security_level' });
    assert.deepEqual(await lookup(`[127.0.0.3]:${plain.port}`), { level: 'encrypt', protocols: '>=TLSv1.2', source: `smtp_tls_policy_maps, next-hop destination "[127.0.0.3]:${plain.port}"` });
    // A broken entry defers the destination with Postfix's text and a warning naming the table.
    const warnings: string[] = [];
    const broken = await lookupTlsPolicy('bad.test', { level: 'may', maps: maps.policyMaps, mapsTitle: maps.policyMapsTitle, warn: (w) => warnings.push(w) });
    assert.deepEqual(broken, { invalid: true, dsn: '4.7.5', text: 'client TLS configuration problem' });
    assert.deepEqual(warnings, [`${maps.policyMapsTitle}, next-hop destination "bad.test": attribute "match" has empty value`]);
    const [c] = await deliver(message('u@bad.test'), options(good.port, tlsCfg({ level: 'may', ...maps })));
    assert.deepEqual([c.status, c.dsn, c.text, c.relay], ['deferred', '4.7.5', 'client TLS configuration problem', 'none']);
    assert.equal(good.messages.length, 1);
  } finally {
    await good.close();
    await plain.close();
  }
});

test('policy entries and protocol lists parse as Postfix reads them', () => {
  const warn: string[] = [];
  const w = (t: string) => warn.push(t);
  const cases: Array<{ input: string; expected: unknown; warning?: string }> = [
    { input: 'none', expected: { level: 'none', source: 'T' } },
    { input: 'none protocols=TLSv1', expected: { level: 'none', source: 'T' }, warning: 'T: ignoring attribute "protocols=TLSv1" with TLS disabled' },
    { input: 'MAY', expected: { level: 'may', source: 'T' } },
    { input: 'dane', expected: { level: 'dane', source: 'T' } },
    { input: 'secure match=a.test:.b.test, match=c.test', expected: { level: 'secure', match: ['a.test', '.b.test', 'c.test'], source: 'T' } },
    { input: 'encrypt match=a.test', expected: { invalid: true, dsn: '4.7.5', text: 'client TLS configuration problem' }, warning: 'T: attribute "match" invalid at security level "encrypt"' },
    { input: 'sometimes', expected: { invalid: true, dsn: '4.7.5', text: 'client TLS configuration problem' }, warning: 'T: invalid security level "sometimes"' },
    { input: 'verify protocols=TLSv9', expected: { invalid: true, dsn: '4.7.5', text: 'client TLS configuration problem' }, warning: 'T: invalid TLS protocol name "TLSv9" in "TLSv9"' },
    { input: 'verify colour=blue', expected: { invalid: true, dsn: '4.7.5', text: 'client TLS configuration problem' }, warning: 'T: invalid attribute name: "colour"' },
    { input: '', expected: { invalid: true, dsn: '4.7.5', text: 'client TLS configuration problem' }, warning: 'T: invalid empty policy' },
  ];
  for (const c of cases) {
    warn.length = 0;
    assert.deepEqual(parsePolicyEntry(c.input, 'T', w), c.expected, c.input);
    assert.deepEqual(warn, c.warning ? [c.warning] : [], c.input);
  }
  const ranges: Array<[string, string, string]> = [
    ['>=TLSv1', 'TLSv1', 'TLSv1.3'],
    ['!SSLv2, !SSLv3', 'TLSv1', 'TLSv1.3'],
    ['>=TLSv1.2', 'TLSv1.2', 'TLSv1.3'],
    ['!SSLv2:!SSLv3:!TLSv1:!TLSv1.1', 'TLSv1.2', 'TLSv1.3'],
    ['<=TLSv1.2', 'TLSv1', 'TLSv1.2'],
    ['TLSv1.3', 'TLSv1.3', 'TLSv1.3'],
  ];
  for (const [spec, min, max] of ranges) assert.deepEqual(protocolRange(spec), { minVersion: min, maxVersion: max }, spec);
  assert.throws(() => protocolRange('SSLv3'), /no TLS protocol left in "SSLv3"/);
  assert.throws(() => protocolRange('>=TLSv2'), /invalid TLS protocol name "TLSv2"/);
});

test('smtp_tls_mandatory_protocols decides the protocol versions offered at mandatory levels', async () => {
  const good = await startSink({ tls: { key: cert.key, cert: cert.cert } });
  try {
    lines.length = 0;
    const [r] = await deliver(message('u@primary.test'), options(good.port, tlsCfg({ level: 'encrypt', mandatoryProtocols: '>=TLSv1.3' })));
    assert.equal(r.status, 'sent');
    assert.ok(lines.some((l) => / TLSv1\.3 with cipher /.test(l)));
    lines.length = 0;
    const [old] = await deliver(message('u@primary.test'), options(good.port, tlsCfg({ level: 'encrypt', mandatoryProtocols: '<=TLSv1.2' })));
    assert.equal(old.status, 'sent');
    assert.ok(lines.some((l) => / TLSv1\.2 with cipher /.test(l)), lines.join('\n'));
  } finally {
    await good.close();
  }
});

test('main.cf: postconf -d says may; smtp_tls_* parameters reach the delivery client', async () => {
  const r = await runCli(['postconf', '-d', 'smtp_tls_security_level', 'backstop_smtp_mta_sts', 'smtp_send_xforward_command']);
  assert.equal(r.stdout, 'smtp_tls_security_level = may\nbackstop_smtp_mta_sts = yes\nsmtp_send_xforward_command = no\n');
  const table = tableFile('example.test  secure match=.example.test\n');
  const config = Config.fromText([
    `smtp_tls_policy_maps = ${table}`,
    'smtp_tls_mandatory_protocols = >=TLSv1.2',
    'smtp_tls_verify_cert_match = hostname, nexthop',
    'smtp_dns_support_level = dnssec',
    'backstop_dns_servers = 127.0.0.1:53000',
  ].join('\n') + '\n', cert.dir);
  const tls = outboundTls(config);
  assert.equal(tls.level, 'may');
  assert.equal(tls.mandatoryProtocols, '>=TLSv1.2');
  assert.deepEqual(tls.verifyMatch, ['hostname', 'nexthop']);
  assert.deepEqual(tls.secureMatch, ['nexthop', 'dot-nexthop']);
  assert.ok(tls.dnssec && tls.secureDns);
  assert.equal(await tls.policyMaps!('example.test'), 'secure match=.example.test');
  const d = deliveryOptions(config, { dns: resolver, cache: new ConnectionCache() });
  assert.equal(d.tls?.level, 'may');
  assert.ok(d.tls?.mtaSts, 'MTA-STS on by default');
  assert.equal(d.session.xforward, false);
});
