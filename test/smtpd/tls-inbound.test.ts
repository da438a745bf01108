// Inbound TLS: STARTTLS offered as soon as a certificate is configured, TLS 1.2 or newer by
// default (smtpd_tls_protocols), the certificate replaced on reload without dropping the sessions
// that are open, the Received: header's TLS clause (smtpd_tls_received_header), and
// `backstop check` on the certificate's expiry and name.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { Config } from '../../src/config/index.js';
import { lintCertificate, lintOutboundTls } from '../../src/check/tls.js';
import { makeTestCert, type TestCert } from '../helpers/sink.js';
import { BASE_MAIN_CF, startHarness } from './harness.js';

describe('smtpd inbound TLS', () => {
  let a: TestCert;
  let b: TestCert;
  before(() => {
    a = makeTestCert(['mx.backup.test'], ['127.0.0.1']);
    b = makeTestCert(['other.backup.test'], ['127.0.0.1']);
  });
  after(() => {
    a.remove();
    b.remove();
  });
  const keyOf = (c: TestCert) => c.certFile.replace(/cert\.pem$/, 'key.pem');
  const certCf = (c: TestCert, extra = '') => `smtpd_tls_cert_file = ${c.certFile}\nsmtpd_tls_key_file = ${keyOf(c)}\n${extra}`;
  const fingerprint = (c: TestCert) => new X509Certificate(c.cert).fingerprint256;

  test('a certificate alone turns STARTTLS on (level may); TLS below 1.2 is refused by default', async () => {
    const h = await startHarness({ mainCf: certCf(a) });
    try {
      const c = await h.ehlo();
      assert.ok((await c.cmd('EHLO client.test')).lines.includes('250-STARTTLS'));
      assert.equal((await c.cmd('STARTTLS')).code, 220);
      await assert.rejects(c.startTls(a.cert, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }));
      c.close();
      const ok = await h.ehlo();
      assert.equal((await ok.cmd('STARTTLS')).code, 220);
      await ok.startTls(a.cert, { maxVersion: 'TLSv1.2' });
      assert.equal((ok.socket as TLSSocket).getProtocol(), 'TLSv1.2');
      ok.close();
    } finally {
      await h.stop();
    }
    // Without a certificate: no STARTTLS.
    const plain = await startHarness();
    try {
      const c = await plain.ehlo();
      assert.ok(!(await c.cmd('EHLO client.test')).lines.some((l) => l.includes('STARTTLS')));
      c.close();
    } finally {
      await plain.stop();
    }
  });

  test('reload replaces the certificate; a session opened before keeps going', async () => {
    const h = await startHarness({ mainCf: certCf(a) });
    try {
      const early = await h.ehlo();
      assert.equal((await early.cmd('STARTTLS')).code, 220);
      await early.startTls(a.cert);
      assert.equal((early.socket as TLSSocket).getPeerCertificate().fingerprint256, fingerprint(a));
      h.smtpd.reload(Config.fromText(BASE_MAIN_CF + certCf(b)));
      // The open session is not dropped and still delivers.
      assert.equal((await early.cmd('EHLO client.test')).code, 250);
      assert.equal((await early.cmd('MAIL FROM:<s@client.test>')).code, 250);
      assert.equal((await early.cmd('RCPT TO:<u@primary.test>')).code, 250);
      assert.equal((await early.cmd('DATA')).code, 354);
      early.write('Subject: before reload\r\n\r\nx\r\n.\r\n');
      assert.match((await early.read()).text, /^250 /);
      early.close();
      // A new session gets the new certificate.
      const late = await h.ehlo();
      assert.equal((await late.cmd('STARTTLS')).code, 220);
      await late.startTls(b.cert);
      assert.equal((late.socket as TLSSocket).getPeerCertificate().fingerprint256, fingerprint(b));
      late.close();
    } finally {
      await h.stop();
    }
  });

  test('smtpd_tls_received_header: the Received: header names protocol and cipher', async () => {
    for (const on of [true, false]) {
      const h = await startHarness({ mainCf: certCf(a, `smtpd_tls_received_header = ${on ? 'yes' : 'no'}\n`) });
      try {
        const c = await h.ehlo();
        assert.equal((await c.cmd('STARTTLS')).code, 220);
        await c.startTls(a.cert);
        await c.cmd('EHLO client.test');
        await c.cmd('MAIL FROM:<s@client.test>');
        await c.cmd('RCPT TO:<u@primary.test>');
        await c.cmd('DATA');
        c.write('Subject: tls\r\n\r\nx\r\n.\r\n');
        assert.match((await c.read()).text, /^250 /);
        c.close();
        const text = h.sink.messages[0].content.toString();
        const received = /^Received: [^]*?\r\n(?=\S)/m.exec(text)?.[0] ?? '';
        if (on) {
          assert.match(received, /^Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\r\n\t\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384 \(256\/256 bits\)\)\r\n\t\(No client certificate requested\)\r\n\tby mx\.backup\.test \(Backstop\) with ESMTPS id /, received);
        } else {
          assert.doesNotMatch(received, /using TLS/);
          assert.match(received, /with ESMTPS id/);
        }
      } finally {
        await h.stop();
      }
    }
  });

  test('backstop check: expiring, expired and misnamed certificates are warnings; unreadable is an error', () => {
    const cfg = (c: string, host = 'mx.backup.test') => Config.fromText(`myhostname = ${host}\nsmtpd_tls_cert_file = ${c}\n`, '/etc/backstop');
    const now = Date.now();
    // makeTestCert certificates are valid for 2 days.
    const soon = lintCertificate(cfg(a.certFile), '/etc/backstop/main.cf', now);
    assert.equal(soon.length, 1);
    assert.equal(soon[0].severity, 'warning');
    assert.match(soon[0].message, new RegExp(`^parameter smtpd_tls_cert_file: certificate ${a.certFile} expires in [12] days? \\(`));
    assert.equal(soon[0].line, 2);
    const later = lintCertificate(cfg(a.certFile), 'main.cf', now - 20 * 86_400_000);
    assert.deepEqual(later, [], 'valid for 22 more days: nothing to say');
    const expired = lintCertificate(cfg(a.certFile), 'main.cf', now + 5 * 86_400_000);
    assert.match(expired[0].message, /expired on /);
    const misnamed = lintCertificate(cfg(b.certFile), 'main.cf', now - 20 * 86_400_000);
    assert.deepEqual(misnamed.map((d) => [d.severity, d.message]), [['warning', `parameter smtpd_tls_cert_file: certificate ${b.certFile} does not name myhostname mx.backup.test (it names other.backup.test)`]]);
    const missing = lintCertificate(cfg('/nonexistent/cert.pem'), 'main.cf', now);
    assert.equal(missing[0].severity, 'error');
    assert.match(missing[0].message, /^parameter smtpd_tls_cert_file: cannot use \/nonexistent\/cert\.pem: ENOENT/);
    assert.deepEqual(lintCertificate(Config.fromText('myhostname = x.test\n'), 'main.cf'), []);
  });
});

test('backstop check: dane without DNSSEC lookups is a warning', () => {
  const at = (text: string) => lintOutboundTls(Config.fromText(text, '/etc/backstop'), '/etc/backstop/main.cf').map((d) => [d.severity, d.line, d.message]);
  assert.deepEqual(at('smtp_tls_security_level = dane\n'), [['warning', 1, 'smtp_tls_security_level = dane needs smtp_dns_support_level = dnssec and a local validating resolver: mail goes out with opportunistic TLS (may) only']]);
  assert.deepEqual(at('x = 1\nsmtp_tls_security_level = dane-only\n'), [['warning', 2, 'smtp_tls_security_level = dane-only needs smtp_dns_support_level = dnssec and a local validating resolver: every delivery is deferred']]);
  assert.deepEqual(at('smtp_tls_security_level = dane\nsmtp_dns_support_level = dnssec\n'), []);
  assert.deepEqual(at('smtp_tls_security_level = verify\n'), []);
});
