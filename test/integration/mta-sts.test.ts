// MTA-STS through the real `backstop start` process with the main.cf defaults
// (smtp_tls_security_level = may, backstop_smtp_mta_sts = yes): the destination's policy is served
// over HTTPS on loopback with a test CA that the server process trusts through Node's standard
// NODE_EXTRA_CA_CERTS, nothing else. enforce: verified TLS to the MX; once the MX stops offering
// TLS, mail waits in the queue instead of going out in plain text.
//
// The policy host must answer on port 443 (RFC 8461 has no port); the test binds it on a random
// 127.13.x.y address of its own, so concurrent runs cannot collide. Needs root (port 443).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { startDnsServer } from '../helpers/dnsserver.js';
import { makeTestCert, startSink, type Sink } from '../helpers/sink.js';
import { talk } from '../helpers/smtp-client.js';
import { freePort } from '../helpers/net.js';
import { makeConfigDir, startServer } from '../helpers/server.js';

async function listen443(cert: { key: string; cert: string }, body: () => string): Promise<{ server: Server; host: string } | undefined> {
  for (let i = 0; i < 20; i++) {
    const host = `127.13.${1 + Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
    const server = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
      if (req.url !== '/.well-known/mta-sts.txt') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain' }).end(body());
    });
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(443, host, () => resolve(true));
    });
    if (ok) return { server, host };
  }
  return undefined;
}

const skip = process.getuid?.() === 0 ? false : 'binding port 443 needs root';

test('MTA-STS enforce through the real server, the CA trusted through NODE_EXTRA_CA_CERTS', { skip, timeout: 90_000 }, async () => {
  const ca = makeTestCert(['mx1.sts.test', 'mta-sts.sts.test'], []);
  const https = await listen443(ca, () => 'version: STSv1\nmode: enforce\nmx: mx1.sts.test\nmax_age: 86400\n');
  assert.ok(https, 'no 127.13.x.y address free on port 443');
  const dns = await startDnsServer({
    'sts.test': { MX: [[10, 'mx1.sts.test']] },
    'mx1.sts.test': { A: ['127.0.0.2'] },
    '_mta-sts.sts.test': { TXT: ['v=STSv1; id=20261129'] },
    'mta-sts.sts.test': { A: [https.host] },
  });
  const port = await freePort();
  const mxPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': [
      'myhostname = mx2.backup.test',
      'mydestination =',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mynetworks = 127.0.0.0/8',
      'queue_directory = spool',
      'data_directory = data',
      `backstop_dns_servers = ${dns.servers}`,
      'backstop_dns_timeout = 2s',
      `transport_maps = inline:{ sts.test=smtp:sts.test:${mxPort} }`,
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      'smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination',
      'backstop_destination_probe_interval = 1s',
      'minimal_backoff_time = 60s',
      'smtpd_error_sleep_time = 0s',
    ].join('\n') + '\n',
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const server = await startServer(dir, port, '127.0.0.1', 20_000, { NODE_EXTRA_CA_CERTS: ca.certFile });
  let sink: Sink | undefined;
  const send = async (subject: string): Promise<string> => {
    const s = await talk(port);
    try {
      await s.cmd('EHLO client.test');
      assert.match(await s.cmd('MAIL FROM:<s@client.test>'), /^250/);
      assert.match(await s.cmd('RCPT TO:<u@sts.test>'), /^250/);
      assert.match(await s.cmd('DATA'), /^354/);
      const m = /queued as ([0-9A-F]+)$/.exec(await s.data(`Subject: ${subject}\r\n\r\nhello\r\n`));
      assert.ok(m);
      return m[1];
    } finally {
      s.close();
    }
  };
  try {
    sink = await startSink({ host: '127.0.0.2', port: mxPort, tls: { key: ca.key, cert: ca.cert } });
    const id1 = await send('one');
    await server.waitForLog(new RegExp(`${id1}: to=<u@sts\\.test>, relay=mx1\\.sts\\.test\\[127\\.0\\.0\\.2\\]:${mxPort}, .*status=sent`), 20_000);
    assert.match(server.log(), /MTA-STS policy for sts\.test: id=20261129 mode=enforce max_age=86400/);
    assert.match(server.log(), new RegExp(`Verified TLS connection established to mx1\\.sts\\.test\\[127\\.0\\.0\\.2\\]:${mxPort}: TLSv1\\.3 with cipher`));
    assert.equal(sink.messages[0].secure, true);
    await sink.close();
    // The MX loses its TLS: the enforce policy keeps the mail in the queue.
    sink = await startSink({ host: '127.0.0.2', port: mxPort });
    const id2 = await send('two');
    await server.waitForLog(new RegExp(`${id2}: to=<u@sts\\.test>, relay=mx1\\.sts\\.test\\[127\\.0\\.0\\.2\\]:${mxPort}, .*dsn=4\\.7\\.4, status=deferred \\(TLS is required, but was not offered by host mx1\\.sts\\.test\\[127\\.0\\.0\\.2\\]\\)`), 20_000);
    assert.equal(sink.messages.length, 0);
  } finally {
    await server.stop();
    await sink?.close();
    await dns.close();
    await new Promise<void>((r) => https.server.close(() => r()));
    server.cleanup();
    ca.remove();
  }
});
