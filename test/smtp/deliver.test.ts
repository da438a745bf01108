// Delivery end to end over real sockets: sinks on 127.0.0.2/127.0.0.3 play the MX hosts, the
// loopback DNS server publishes the zones, and we are 127.0.0.1 (listed as the backup MX).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createServer, type Server, type Socket, type AddressInfo } from 'node:net';
import { Resolver } from '../../src/dns/index.js';
import { Maillog } from '../../src/log/index.js';
import { ConnectionCache, deliver, probe, type DeliveryOptions, type OutboundMessage } from '../../src/smtp/index.js';
import { startDnsServer, type TestDnsServer } from '../helpers/dnsserver.js';
import { makeTestCert, startSink, type Sink, type TestCert } from '../helpers/sink.js';
import { freePort, waitFor } from '../helpers/net.js';

let dns: TestDnsServer;
let resolver: Resolver;
let cert: TestCert;
const log = new Maillog();
log.open(undefined, { quiet: true });
const lines: string[] = [];
log.addSink((r) => lines.push(r.text));

before(async () => {
  cert = makeTestCert(['mx1.primary.test'], ['127.0.0.2']);
  dns = await startDnsServer({
    'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
    'fallback.test': { MX: [[10, 'mx1.fallback.test'], [20, 'mx1.primary.test'], [30, 'mx2.backup.test']] },
    'mx1.fallback.test': { A: ['127.0.0.3'] },
    'mx1.primary.test': { A: ['127.0.0.2'] },
    'mx2.backup.test': { A: ['127.0.0.1'] },
    'best.test': { MX: [[10, 'mx2.backup.test'], [20, 'mx1.primary.test']] },
    'nobetter.test': { MX: [[10, 'gone.primary.test'], [20, 'mx2.backup.test']] },
    'broken.test': 'servfail',
    'nullmx.test': { MX: [[0, '.']] },
  });
  resolver = new Resolver({ servers: [dns.servers], timeoutMs: 2000 });
});

after(async () => {
  resolver.close();
  await dns.close();
  cert.remove();
});

function options(port: number, extra: Partial<DeliveryOptions> = {}): DeliveryOptions {
  return {
    dns: resolver,
    isSelf: (ip) => ip === '127.0.0.1',
    inetProtocols: ['ipv4'],
    randomize: false,
    defaultPort: port,
    logger: log.logger('smtp'),
    session: { heloName: 'mx2.backup.test', timeouts: { smtp_connect_timeout: 2, smtp_helo_timeout: 2, smtp_data_done_timeout: 2 } },
    ...extra,
  };
}

function message(rcpts: string[], content = 'Subject: test\r\n\r\nhello\r\n', extra: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    queueId: 'ABC123',
    sender: 'sender@client.test',
    recipients: rcpts.map((address) => ({ address })),
    body: () => Readable.from([Buffer.from(content)]),
    size: Buffer.byteLength(content),
    ...extra,
  };
}

test('delivers to the primary MX found in DNS and logs as Postfix', async () => {
  const sink = await startSink({ users: ['user@primary.test'] });
  try {
    lines.length = 0;
    const r = await deliver(message(['user@primary.test'], 'Subject: t\r\n\r\nbody\r\n', { arrivalTime: Date.now() - 3000 }), options(sink.port));
    assert.equal(r.length, 1);
    assert.equal(r[0].status, 'sent');
    assert.equal(r[0].dsn, '2.0.0');
    assert.equal(r[0].text, '250 2.0.0 Ok: queued as SINK1');
    assert.equal(r[0].relay, `mx1.primary.test[127.0.0.2]:${sink.port}`);
    const [m] = await sink.waitFor(1);
    assert.equal(m.from, 'sender@client.test');
    assert.deepEqual(m.to, ['user@primary.test']);
    assert.equal(m.helo, 'mx2.backup.test');
    assert.equal(m.raw.toString(), 'Subject: t\r\n\r\nbody\r\n');
    const line = lines.find((l) => l.startsWith('ABC123: to=<user@primary.test>'));
    assert.match(line!, new RegExp(`^ABC123: to=<user@primary\\.test>, relay=mx1\\.primary\\.test\\[127\\.0\\.0\\.2\\]:${sink.port}, delay=3(\\.\\d)?, delays=3(\\.\\d)?/0(\\.\\d+)?/0(\\.\\d+)?/0(\\.\\d+)?, dsn=2\\.0\\.0, status=sent \\(250 2\\.0\\.0 Ok: queued as SINK1\\)$`));
  } finally {
    await sink.close();
  }
});

test('falls back to the next MX when the first refuses connections', async () => {
  const sink = await startSink({ host: '127.0.0.2' });
  try {
    lines.length = 0;
    const r = await deliver(message(['a@fallback.test']), options(sink.port));
    assert.equal(r[0].status, 'sent');
    assert.equal(r[0].relay, `mx1.primary.test[127.0.0.2]:${sink.port}`);
    assert.ok(lines.includes(`connect to mx1.fallback.test[127.0.0.3]:${sink.port}: Connection refused`), lines.join('\n'));
    assert.equal(sink.messages.length, 1);
  } finally {
    await sink.close();
  }
});

test('every MX down: deferred 4.4.1 with relay=none and the connect error', async () => {
  const port = await freePort('127.0.0.2');
  lines.length = 0;
  const r = await deliver(message(['user@primary.test']), options(port));
  assert.deepEqual({ status: r[0].status, dsn: r[0].dsn, relay: r[0].relay, text: r[0].text },
    { status: 'deferred', dsn: '4.4.1', relay: 'none', text: `connect to mx1.primary.test[127.0.0.2]:${port}: Connection refused` });
  assert.match(lines.find((l) => l.includes('status=deferred'))!, new RegExp(`^ABC123: to=<user@primary\\.test>, relay=none, delay=[\\d.]+, delays=[\\d./]+, dsn=4\\.4\\.1, status=deferred \\(connect to mx1\\.primary\\.test\\[127\\.0\\.0\\.2\\]:${port}: Connection refused\\)$`));
});

test('per-recipient results: 2xx sent, 4xx deferred, 5xx bounced', async () => {
  const sink = await startSink({
    users: ['ok@primary.test', 'busy@primary.test'],
    rcptReply: (a) => (a.startsWith('busy') ? { code: 450, text: '4.2.1 <busy@primary.test>: mailbox busy' } : undefined),
  });
  try {
    const r = await deliver(message(['ok@primary.test', 'busy@primary.test', 'nobody@primary.test']), options(sink.port));
    assert.deepEqual(r.map((x) => [x.address, x.status, x.dsn, x.text]), [
      ['ok@primary.test', 'sent', '2.0.0', '250 2.0.0 Ok: queued as SINK1'],
      ['busy@primary.test', 'deferred', '4.2.1', `host mx1.primary.test[127.0.0.2] said: 450 4.2.1 <busy@primary.test>: mailbox busy (in reply to RCPT TO command)`],
      ['nobody@primary.test', 'bounced', '5.1.1', `host mx1.primary.test[127.0.0.2] said: 550 5.1.1 <nobody@primary.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)`],
    ]);
    assert.equal(r[2].diagnostic, '550 5.1.1 <nobody@primary.test>: Recipient address rejected: User unknown');
    const [m] = await sink.waitFor(1);
    assert.deepEqual(m.to, ['ok@primary.test']);
  } finally {
    await sink.close();
  }
});

test('MAIL FROM and end-of-DATA rejections apply to every recipient', async () => {
  const sink = await startSink({
    mailReply: (a) => (a === 'bad@client.test' ? { code: 553, text: '5.7.1 <bad@client.test>: Sender address rejected' } : undefined),
    dataReply: () => ({ code: 451, text: '4.3.0 try later' }),
  });
  try {
    const r1 = await deliver(message(['a@primary.test', 'b@primary.test'], 'x\r\n', { sender: 'bad@client.test' }), options(sink.port));
    assert.deepEqual(r1.map((x) => [x.status, x.dsn, x.text]), Array(2).fill(['bounced', '5.7.1', 'host mx1.primary.test[127.0.0.2] said: 553 5.7.1 <bad@client.test>: Sender address rejected (in reply to MAIL FROM command)']));
    const r2 = await deliver(message(['a@primary.test']), options(sink.port));
    assert.deepEqual([r2[0].status, r2[0].dsn, r2[0].text], ['deferred', '4.3.0', 'host mx1.primary.test[127.0.0.2] said: 451 4.3.0 try later (in reply to end of DATA command)']);
  } finally {
    await sink.close();
  }
});

test('loop detection: we are the best MX / no better MX resolves; DNS failures', async () => {
  lines.length = 0;
  const r = await deliver(message(['a@best.test', 'b@nobetter.test', 'c@broken.test', 'd@nullmx.test']), options(2525));
  assert.deepEqual(r.map((x) => [x.status, x.dsn, x.relay, x.text]), [
    ['bounced', '5.4.6', 'none', 'mail for best.test loops back to myself'],
    ['deferred', '4.4.4', 'none', 'unable to find primary relay for nobetter.test'],
    ['deferred', '4.4.3', 'none', 'Host or domain name not found. Name service error for name=broken.test type=MX: Host not found, try again'],
    ['bounced', '5.1.0', 'none', 'Domain nullmx.test does not accept mail (nullMX)'],
  ]);
  assert.ok(lines.some((l) => /^ABC123: to=<a@best\.test>, relay=none, delay=\S+, delays=\S+, dsn=5\.4\.6, status=bounced \(mail for best\.test loops back to myself\)$/.test(l)));
});

test('transport_maps and relayhost choose the next hop', async () => {
  const a = await startSink({ host: '127.0.0.2' });
  const b = await startSink({ host: '127.0.0.3' });
  try {
    const table: Record<string, string> = { 'primary.test': `smtp:[127.0.0.3]:${b.port}`, 'other.test': `smtp:primary.test:${a.port}` };
    const o = options(1, { transportMaps: (k) => table[k] });
    const r = await deliver(message(['x@primary.test', 'y@other.test']), o);
    assert.deepEqual(r.map((x) => [x.status, x.relay]), [['sent', `127.0.0.3[127.0.0.3]:${b.port}`], ['sent', `mx1.primary.test[127.0.0.2]:${a.port}`]]);
    const r2 = await deliver(message(['z@anything.test']), options(1, { relayhost: `[127.0.0.3]:${b.port}` }));
    assert.deepEqual([r2[0].status, r2[0].relay], ['sent', `127.0.0.3[127.0.0.3]:${b.port}`]);
    const r3 = await deliver(message(['z@anything.test']), options(1, { relayhost: '[127.0.0.3]:99999' }));
    assert.deepEqual([r3[0].status, r3[0].dsn, r3[0].text], ['deferred', '4.3.5', 'mail system configuration error: bad next-hop destination "[127.0.0.3]:99999": port 99999 out of range 1..65535']);
    assert.equal(a.messages.length, 1);
    assert.equal(b.messages.length, 2);
  } finally {
    await a.close();
    await b.close();
  }
});

test('STARTTLS: may uses TLS when offered and plain text otherwise; encrypt requires it; verify checks the name', async () => {
  const tlsSink = await startSink({ tls: { key: cert.key, cert: cert.cert } });
  const plainSink = await startSink({ host: '127.0.0.3' });
  const otherName = await startSink({ host: '127.0.0.3', tls: { key: cert.key, cert: cert.cert } });
  try {
    lines.length = 0;
    const viaRelay = (s: Sink, level: 'may' | 'encrypt' | 'verify', host = s.host) =>
      deliver(message(['u@primary.test']), options(s.port, { relayhost: `[${host}]:${s.port}`, session: { heloName: 'mx2.backup.test', tlsLevel: level, tlsCa: cert.cert } }));
    assert.equal((await viaRelay(tlsSink, 'may'))[0].status, 'sent');
    assert.equal(tlsSink.messages[0].secure, true);
    // Postfix: at "may" a certificate is at best Trusted; only a level that requires a match says Verified.
    assert.ok(lines.some((l) => l.startsWith(`Trusted TLS connection established to 127.0.0.2[127.0.0.2]:${tlsSink.port}: TLSv1.3 with cipher`)), lines.join('\n'));
    // A certificate from a trusted issuer that does not name the host: Trusted, not Verified.
    assert.equal((await viaRelay(otherName, 'may'))[0].status, 'sent');
    assert.ok(lines.some((l) => l.startsWith(`Trusted TLS connection established to 127.0.0.3[127.0.0.3]:${otherName.port}: TLSv1.3 with cipher`)), lines.join('\n'));
    const mismatch = await viaRelay(otherName, 'verify');
    assert.deepEqual([mismatch[0].status, mismatch[0].dsn, mismatch[0].text], ['deferred', '4.7.5', 'Server certificate not verified']);
    assert.ok(lines.some((l) => l === `certificate verification failed for 127.0.0.3[127.0.0.3]:${otherName.port}: certificate does not match hostname`), lines.join('\n'));
    assert.equal((await viaRelay(plainSink, 'may'))[0].status, 'sent');
    assert.equal(plainSink.messages[0].secure, false);
    const enc = await viaRelay(plainSink, 'encrypt');
    assert.deepEqual([enc[0].status, enc[0].dsn, enc[0].text], ['deferred', '4.7.4', 'TLS is required, but was not offered by host 127.0.0.3[127.0.0.3]']);
    // verify: the MX name from DNS must match the certificate.
    const ver = await deliver(message(['u@primary.test']), options(tlsSink.port, { session: { heloName: 'mx2.backup.test', tlsLevel: 'verify', tlsCa: cert.cert } }));
    assert.equal(ver[0].status, 'sent');
    assert.ok(lines.some((l) => l.startsWith(`Verified TLS connection established to mx1.primary.test[127.0.0.2]:${tlsSink.port}`)));
    const bad = await viaRelay(tlsSink, 'verify', '127.0.0.2');
    assert.equal(bad[0].status, 'sent', 'IP literal is in the certificate SAN');
    const wrongCa = await deliver(message(['u@primary.test']), options(tlsSink.port, { session: { heloName: 'h', tlsLevel: 'verify' } }));
    assert.equal(wrongCa[0].status, 'deferred');
    assert.equal(wrongCa[0].text, 'Server certificate not verified');
    assert.ok(lines.some((l) => /^certificate verification failed for mx1\.primary\.test\[127\.0\.0\.2\]:\d+: untrusted issuer: /.test(l)), lines.join('\n'));
  } finally {
    await tlsSink.close();
    await plainSink.close();
    await otherName.close();
  }
});

test('dot-stuffing and smuggling bytes arrive as exactly one message with CRLF', async () => {
  const sink = await startSink();
  try {
    const content = 'Subject: s\r\n\r\n.leading dot\r\nline\n.\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@primary.test>\r\nDATA\r\nsmuggled\r.\r\nbare\rcr\nlf\n.\n';
    const r = await deliver(message(['u@primary.test'], content), options(sink.port));
    assert.equal(r[0].status, 'sent');
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(sink.messages.length, 1);
    assert.equal(sink.mailCommands, 1);
    assert.equal(sink.messages[0].raw.toString(),
      'Subject: s\r\n\r\n.leading dot\r\nline\r\n.\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@primary.test>\r\nDATA\r\nsmuggled\r\n.\r\nbare\r\ncr\r\nlf\r\n.\r\n');
    assert.ok(!/[^\r]\n|\r[^\n]/.test(sink.messages[0].raw.toString()));
  } finally {
    await sink.close();
  }
});

test('DSN parameters are passed through when the peer offers DSN; SIZE= when it offers SIZE', async () => {
  const sink = await startSink({ size: 1000 });
  try {
    const msg = message(['u@primary.test'], 'x\r\n', { ret: 'HDRS', envid: 'id+1=2', recipients: [{ address: 'u@primary.test', notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;Orig@primary.test' }] });
    await deliver(msg, options(sink.port));
    const [m] = await sink.waitFor(1);
    assert.equal(m.dsn.ret, 'HDRS');
    assert.equal(m.dsn.envid, 'id+1=2', 'xtext-encoded on the wire, decoded by the sink');
    assert.deepEqual(m.dsn.rcpt, [{ notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;Orig@primary.test' }]);
    assert.equal(m.mailArgs.SIZE, '3');
  } finally {
    await sink.close();
  }
});

test('SIZE: a message larger than the peer allows bounces 5.3.4 without DATA', async () => {
  const sink = await startSink({ size: 100 });
  try {
    const r = await deliver(message(['u@primary.test'], 'x'.repeat(500)), options(sink.port));
    assert.deepEqual([r[0].status, r[0].dsn, r[0].text], ['bounced', '5.3.4', 'message size 500 exceeds size limit 100 of server mx1.primary.test[127.0.0.2]']);
    assert.equal(sink.mailCommands, 0);
  } finally {
    await sink.close();
  }
});

test('connection reuse: consecutive deliveries share one session (RSET between)', async () => {
  const sink = await startSink();
  const cache = new ConnectionCache({ idleSeconds: 1 });
  try {
    lines.length = 0;
    for (let i = 0; i < 3; i++) {
      const r = await deliver(message([`u${i}@primary.test`]), options(sink.port, { cache }));
      assert.equal(r[0].status, 'sent');
    }
    assert.equal(sink.connections, 1);
    assert.equal(sink.messages.length, 3);
    assert.ok(lines.some((l) => /to=<u2@primary\.test>, relay=\S+, conn_use=3, /.test(l)), lines.join('\n'));
  } finally {
    await cache.closeAll();
    await sink.close();
  }
});

test('connection reuse with PIPELINING: RSET leaves with the end of data; a failed RSET drops the session, not the message', async () => {
  let connections = 0;
  const { port, server } = await rawServer(async (sock, got) => {
    const n = ++connections;
    sock.write('220 raw ESMTP\r\n');
    await seen(got, 'EHLO');
    sock.write('250-raw\r\n250 PIPELINING\r\n');
    await seen(got, 'DATA\r\n');
    sock.write('250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n');
    // Nothing is answered until RSET is in: a client that waited for the 250 of the end of data
    // before sending RSET would hang here.
    await seen(got, '\r\n.\r\nRSET\r\n');
    if (n === 1) {
      sock.write('250 2.0.0 queued as A\r\n250 2.0.0 Ok\r\n');
      // The second message reuses this session: MAIL at once, no second RSET before it.
      await waitFor(() => got().split('DATA\r\n').length === 3, 2000, 'the second transaction', 5);
      assert.equal(got().split('RSET').length - 1, 1, 'no RSET before the second MAIL');
      sock.write('250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n');
      await seen(got, 'queued twice\r\n.\r\nRSET\r\n');
      sock.write('250 2.0.0 queued as B\r\n421 4.3.0 going away\r\n');
      sock.end();
    } else {
      sock.write('250 2.0.0 queued as C\r\n250 2.0.0 Ok\r\n');
      await seen(got, 'QUIT');
      sock.end('221 bye\r\n');
    }
  }, '127.0.0.2');
  const cache = new ConnectionCache({ idleSeconds: 5 });
  try {
    const deliverOne = async (rcpt: string, body: string) => {
      const m = message([rcpt]);
      return deliver({ ...m, body: () => Readable.from([Buffer.from(`Subject: x\r\n\r\n${body}\r\n`)]) }, options(port, { cache }));
    };
    assert.equal((await deliverOne('a@primary.test', 'queued once'))[0].status, 'sent');
    assert.equal((await deliverOne('b@primary.test', 'queued twice'))[0].status, 'sent', 'a 421 to RSET does not undo a delivered message');
    assert.equal(connections, 1);
    // The session that failed RSET was not kept: the third message opens a new one.
    assert.equal((await deliverOne('c@primary.test', 'queued thrice'))[0].status, 'sent');
    assert.equal(connections, 2);
  } finally {
    await cache.closeAll();
    server.close();
  }
});

test('one connection for two deliveries: the second\'s MAIL, RCPT and DATA ride behind the first\'s end of data without an RSET, each gets its own replies; a busy connection bounds the wait', async () => {
  let connections = 0;
  const { port, server } = await rawServer(async (sock, got) => {
    // A second connection is opened only after the first was given up (the unanswered MAIL below).
    if (++connections > 1) return void sock.end('421 4.3.2 try again later\r\n');
    sock.write('220 raw ESMTP\r\n');
    await seen(got, 'EHLO');
    sock.write('250-raw\r\n250 PIPELINING\r\n');
    await seen(got, 'DATA\r\n');
    sock.write('250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n');
    // The end of data of the first message is not answered until the second transaction is in:
    // a client that waited for that reply before starting the next message would hang here.
    await waitFor(() => got().split('DATA\r\n').length === 3, 2000, 'the second transaction before the first 250', 5);
    // A delivery was waiting for the session: its MAIL follows the end of data at once, with no
    // RSET between (the server is back in its initial state after the end of data, whatever it answers).
    assert.match(got(), /first\r\n\.\r\nMAIL FROM:<sender@client\.test>.*\r\nRCPT TO:<b@primary\.test>\r\nDATA\r\n$/s);
    sock.write('554 5.7.1 first refused\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n');
    // Nobody waits behind the second: RSET goes with its end of data, the probe for the cached session.
    await seen(got, 'second\r\n.\r\nRSET\r\n');
    sock.write('250 2.0.0 queued as B\r\n250 2.0.0 Ok\r\n');
    // The third transaction gets no reply to MAIL: its connection stays busy until the client gives up.
  }, '127.0.0.2');
  const cache = new ConnectionCache({ idleSeconds: 5 });
  const base = options(port);
  const opts = { ...base, cache, slotWaitSec: 0.3, session: { ...base.session, timeouts: { ...base.session.timeouts, smtp_mail_timeout: 1 } } };
  const one = (rcpt: string, body: string) => deliver({ ...message([rcpt]), body: () => Readable.from([Buffer.from(`Subject: x\r\n\r\n${body}\r\n`)]) }, opts, { connections: 1 });
  try {
    const [a, b] = await Promise.all([one('a@primary.test', 'first'), one('b@primary.test', 'second')]);
    assert.equal(connections, 1);
    assert.deepEqual([a[0].status, a[0].text], ['bounced', `host mx1.primary.test[127.0.0.2] said: 554 5.7.1 first refused (in reply to end of DATA command)`]);
    assert.deepEqual([b[0].status, b[0].text], ['sent', '250 2.0.0 queued as B']);
    // One connection, busy with a transaction the peer does not answer: the other delivery waits
    // slotWaitSec, then defers without opening a second connection.
    const stuck = one('c@primary.test', 'third');
    await new Promise((r) => setTimeout(r, 50));
    const waited = await one('d@primary.test', 'fourth');
    assert.deepEqual([waited[0].status, waited[0].dsn], ['deferred', '4.4.5']);
    assert.match(waited[0].text, /^delivery temporarily suspended: all 1 connections to \S+ stayed busy$/);
    assert.equal(connections, 1);
    const c = await stuck;
    assert.equal(c[0].status, 'deferred', 'the unanswered MAIL times out');
    assert.equal(connections, 2);
  } finally {
    await cache.closeAll();
    server.close();
  }
});

test('a recipient refused with 4xx on a cached or handed-over session at the only MX is deferred once, not tried again', async () => {
  const sink = await startSink({ host: '127.0.0.2', rcptReply: (a) => (a.startsWith('later') ? { code: 450, text: '4.2.0 try later' } : undefined) });
  const cache = new ConnectionCache({ idleSeconds: 5 });
  try {
    const opts = options(sink.port, { cache });
    const first = await deliver(message(['user@primary.test', 'later@primary.test']), opts, { connections: 2 });
    assert.deepEqual(first.map((r) => r.status), ['sent', 'deferred']);
    // Now a cached session is there: the recipient is refused on it, and that is its answer for this attempt.
    const again = await deliver(message(['later@primary.test']), opts, { connections: 2 });
    assert.deepEqual([again[0].status, again[0].dsn], ['deferred', '4.2.0']);
    assert.equal(sink.peakConnections, 1);
    // One connection allowed, two deliveries at once: the second waits for the first's session,
    // which is handed over behind its end of data (no DNS lookup for it). Refused there with 4xx
    // at the only MX, the recipient is deferred once, with the connection's use count.
    await cache.closeAll();
    const before = sink.rcptCommands;
    lines.length = 0;
    const [ok, later] = await Promise.all([deliver(message(['user@primary.test']), opts, { connections: 1 }), deliver(message(['later@primary.test']), opts, { connections: 1 })]);
    assert.equal(ok[0].status, 'sent');
    assert.deepEqual([later[0].status, later[0].dsn], ['deferred', '4.2.0']);
    assert.equal(sink.rcptCommands - before, 2, 'each recipient asked for once');
    assert.equal(sink.peakConnections, 1);
    assert.ok(lines.some((l) => /to=<later@primary\.test>, relay=mx1\.primary\.test\[127\.0\.0\.2\]:\d+, conn_use=2, .*status=deferred/.test(l)), lines.join('\n'));
  } finally {
    await cache.closeAll();
    await sink.close();
  }
});

test('probe: deliverable, undeliverable and deferred, without DATA', async () => {
  const sink = await startSink({ users: ['user@primary.test'] });
  try {
    lines.length = 0;
    const o = options(sink.port);
    assert.deepEqual(await probe('user@primary.test', 'double-bounce@mx2.backup.test', o),
      { status: 'deliverable', dsn: '2.0.0', text: '250 Accepted', relay: `mx1.primary.test[127.0.0.2]:${sink.port}` });
    assert.deepEqual(await probe('nobody@primary.test', 'double-bounce@mx2.backup.test', { ...o, queueId: 'P1' }), {
      status: 'undeliverable', dsn: '5.1.1', relay: `mx1.primary.test[127.0.0.2]:${sink.port}`,
      text: 'host mx1.primary.test[127.0.0.2] said: 550 5.1.1 <nobody@primary.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)',
    });
    assert.equal(sink.messages.length, 0);
    assert.ok(lines.some((l) => /^P1: to=<nobody@primary\.test>, relay=mx1\.primary\.test\[127\.0\.0\.2\]:\d+, delay=\S+, delays=\S+, dsn=5\.1\.1, status=undeliverable \(host /.test(l)));
  } finally {
    await sink.close();
  }
  const port = await freePort('127.0.0.2');
  lines.length = 0;
  assert.deepEqual(await probe('user@primary.test', 'double-bounce@mx2.backup.test', options(port)),
    { status: 'deferred', dsn: '4.4.1', relay: 'none', text: `connect to mx1.primary.test[127.0.0.2]:${port}: Connection refused` });
  assert.ok(lines.some((l) => l.includes('dsn=4.4.1, status=undeliverable (connect to')), lines.join('\n'));
});

/** A scripted raw SMTP server: `handler` gets each received chunk and the socket. */
async function rawServer(handler: (sock: Socket, received: () => string) => void, host = '127.0.0.3'): Promise<{ port: number; server: Server }> {
  const server = createServer((sock) => {
    let buf = '';
    sock.on('data', (d) => { buf += d.toString('latin1'); });
    sock.on('error', () => undefined);
    handler(sock, () => buf);
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  return { port: (server.address() as AddressInfo).port, server };
}

/** Resolves once the raw server has received `text` (polls every 5 ms, at most 2 s). */
async function seen(got: () => string, text: string): Promise<void> {
  await waitFor(() => got().includes(text), 2000, `the client to send ${JSON.stringify(text)}`, 5);
}

test('pipelining: MAIL, RCPTs and DATA arrive before any reply; multi-line replies joined', async () => {
  const { port, server } = await rawServer(async (sock, got) => {
    sock.write('220 raw ESMTP\r\n');
    await seen(got, 'EHLO');
    sock.write('250-raw\r\n250-PIPELINING\r\n250 8BITMIME\r\n');
    // No reply until the whole group is in: a client that waited for the MAIL reply would hang.
    await seen(got, 'DATA\r\n');
    sock.write('250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550-5.1.1 first line\r\n550 5.1.1 second line\r\n354 go\r\n');
    await seen(got, '\r\n.\r\n');
    sock.write('250 2.0.0 queued\r\n');
    await seen(got, 'QUIT');
    sock.end('221 bye\r\n');
  });
  try {
    const r = await deliver(message(['a@x.test', 'b@x.test']), options(port, { relayhost: `[127.0.0.3]:${port}` }));
    assert.deepEqual(r.map((x) => [x.status, x.text]), [
      ['sent', '250 2.0.0 queued'],
      ['bounced', 'host 127.0.0.3[127.0.0.3] said: 550-5.1.1 first line 550 5.1.1 second line (in reply to RCPT TO command)'],
    ]);
  } finally {
    server.close();
  }
});

test('HELO fallback when EHLO is rejected; lost connection and timeouts are deferred with Postfix texts', async () => {
  const helo = await rawServer(async (sock, got) => {
    sock.write('220 old\r\n');
    await seen(got, 'EHLO');
    sock.write('502 5.5.2 what\r\n');
    await seen(got, 'HELO mx2.backup.test');
    sock.write('250 old\r\n');
    await seen(got, 'MAIL FROM:<sender@client.test>\r\n');
    assert.ok(!got().includes('SIZE='), 'no ESMTP parameters to an SMTP server');
    sock.write('250 ok\r\n');
    await seen(got, 'RCPT');
    sock.write('250 ok\r\n');
    await seen(got, 'DATA');
    sock.write('354 go\r\n');
    await seen(got, '\r\n.\r\n');
    sock.destroy();
  });
  const silent = await rawServer((sock) => { sock.write('220 slow\r\n'); }, '127.0.0.2');
  try {
    const r = await deliver(message(['a@x.test']), options(1, { relayhost: `[127.0.0.3]:${helo.port}` }));
    assert.deepEqual([r[0].status, r[0].dsn, r[0].relay, r[0].text], ['deferred', '4.4.2', `127.0.0.3[127.0.0.3]:${helo.port}`, 'lost connection with 127.0.0.3[127.0.0.3] while sending end of data -- message may be sent more than once']);
    const o = options(1, { relayhost: `[127.0.0.2]:${silent.port}`, session: { heloName: 'h', timeouts: { smtp_helo_timeout: 0.2 } } });
    const t = await deliver(message(['a@x.test']), o);
    assert.deepEqual([t[0].status, t[0].dsn, t[0].text], ['deferred', '4.4.2', 'conversation with 127.0.0.2[127.0.0.2] timed out while performing the EHLO handshake']);
  } finally {
    helo.server.close();
    silent.server.close();
  }
});

test('a 4xx at a non-final MX moves the recipient on to the next MX', async () => {
  const first = await startSink({ host: '127.0.0.3', rcptReply: () => ({ code: 451, text: '4.3.0 overloaded' }) });
  const second = await startSink({ host: '127.0.0.2' });
  try {
    // Both sinks must share one port for the MX route; use the relayhost list form instead.
    const r = await deliver(message(['a@x.test']), options(1, { relayhost: `[127.0.0.3]:${first.port}, [127.0.0.2]:${second.port}` }));
    assert.deepEqual([r[0].status, r[0].relay], ['sent', `127.0.0.2[127.0.0.2]:${second.port}`]);
    assert.equal(first.rcptCommands, 1);
    const only = await deliver(message(['a@x.test']), options(1, { relayhost: `[127.0.0.3]:${first.port}` }));
    assert.deepEqual([only[0].status, only[0].dsn], ['deferred', '4.3.0']);
  } finally {
    await first.close();
    await second.close();
  }
});

/** Connection slots shared by several holders, as PgSlots shares them between nodes (in one process here). */
function sharedSlots(): { tryAcquire(key: string, limit: number): Promise<(() => void) | null>; held: () => number } {
  let held = 0;
  return {
    held: () => held,
    async tryAcquire(_key, limit) {
      if (held >= limit) return null;
      held++;
      let done = false;
      return () => {
        if (!done) (done = true), held--;
      };
    },
  };
}

test('shared connection slots: two "nodes" with their own connection caches keep at most the limit of connections to the primary, cached idle ones included', async () => {
  const sink = await startSink({ delayMs: 5 });
  const slots = sharedSlots();
  const nodes = [new ConnectionCache({ idleSeconds: 0.3 }), new ConnectionCache({ idleSeconds: 0.3 })];
  try {
    const results = await Promise.all(
      nodes.flatMap((cache, n) =>
        Array.from({ length: 12 }, (_, i) => deliver(message([`u${n}-${i}@primary.test`]), options(sink.port, { cache, slots, slotLimit: 3 }))),
      ),
    );
    assert.deepEqual(results.map((r) => r[0].status), new Array(24).fill('sent'));
    assert.equal(sink.messages.length, 24);
    assert.ok(sink.peakConnections <= 3, `peak ${sink.peakConnections} connections over 3 slots`);
    assert.ok(sink.connections < 24, 'connections were reused');
    // Idle cached connections keep their slots until they close; then every slot is free again.
    await waitFor(() => slots.held() === 0, 5000, 'every slot given back');
    // A node that can get no slot in time defers, saying why, and opens nothing.
    const blocked = { tryAcquire: async () => null };
    const before = sink.connections;
    const r = await deliver(message(['late@primary.test']), options(sink.port, { slots: blocked, slotLimit: 3, slotWaitSec: 1 }));
    assert.equal(r[0].status, 'deferred');
    assert.equal(r[0].dsn, '4.4.5');
    assert.match(r[0].text, /all 3 connection slots of .* are in use by other nodes/);
    assert.equal(sink.connections, before);
  } finally {
    await Promise.all(nodes.map((c) => c.closeAll()));
    await sink.close();
  }
});
