// STARTTLS (security levels, RFC 3207 rules, plaintext injection, garbage instead of a handshake)
// and SMTP AUTH checked against a Dovecot-auth-protocol server on loopback.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestCert, type TestCert } from '../helpers/sink.js';
import { startHarness } from './harness.js';
import { startDovecotAuth, type DovecotTestServer } from './dovecot-server.js';
import { DovecotAuthClient } from '../../src/smtpd/index.js';
import { sleep } from '../helpers/net.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('smtpd STARTTLS and AUTH', () => {
  let cert: TestCert;
  let dovecot: DovecotTestServer;
  let keyFile: string;
  before(async () => {
    cert = makeTestCert();
    keyFile = cert.certFile.replace(/cert\.pem$/, 'key.pem');
    dovecot = await startDovecotAuth({ alice: 'secret', bob: 'hunter2' });
  });
  after(async () => {
    cert.remove();
    await dovecot.close();
  });
  const tlsCf = (level: string, extra = '') =>
    `smtpd_tls_security_level = ${level}\nsmtpd_tls_cert_file = ${cert.certFile}\nsmtpd_tls_key_file = ${keyFile}\n${extra}`;
  const saslCf = (extra = '') => `smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:127.0.0.1:${dovecot.port}\n${extra}`;

  test('may: STARTTLS offered, new EHLO required afterwards, STARTTLS gone from EHLO', async () => {
    const h = await startHarness({ mainCf: tlsCf('may') });
    const c = await h.ehlo();
    const e = await c.cmd('EHLO client.test');
    assert.ok(e.lines.includes('250-STARTTLS'));
    assert.equal((await c.cmd('STARTTLS')).text, '220 2.0.0 Ready to start TLS');
    await c.startTls(cert.cert);
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).text, '503 5.5.1 Error: send HELO/EHLO first');
    const e2 = await c.cmd('EHLO client.test');
    assert.ok(!e2.lines.some((l) => l.includes('STARTTLS')));
    assert.equal((await c.cmd('STARTTLS')).text, '554 5.5.1 Error: TLS already active');
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<u@p.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('x\r\n.\r\n');
    assert.match((await c.read()).text, /^250 /);
    assert.equal(h.sink.messages[0].envelope.client.protocol, 'ESMTPS');
    assert.match(h.sink.messages[0].content.toString(), /with ESMTPS id/);
    await c.cmd('QUIT');
    await h.waitLog(/disconnect from unknown\[127\.0\.0\.1\] ehlo=3 starttls=1\/2 mail=1\/2 rcpt=1 data=1 quit=1 commands=8\/10$/);
    await h.stop();
  });

  test('encrypt: MAIL before STARTTLS gets 530 5.7.0', async () => {
    const h = await startHarness({ mainCf: tlsCf('encrypt') });
    const c = await h.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<a@b.test>')).text, '530 5.7.0 Must issue a STARTTLS command first');
    c.close();
    await h.stop();
  });

  test('STARTTLS with a pipelined plaintext command: the plaintext is discarded, never run', async () => {
    const h = await startHarness({ mainCf: tlsCf('may') });
    const c = await h.ehlo();
    // Postfix lets STARTTLS be pipelined and throws away what follows it in plaintext (CVE-2011-0411).
    c.write('STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n');
    assert.equal((await c.read()).code, 220);
    await c.startTls(cert.cert);
    // Had the MAIL survived, its reply (503: HELO/EHLO again after STARTTLS) would come first.
    assert.equal((await c.cmd('NOOP')).text, '250 2.0.0 Ok');
    c.close();
    await h.stop();
  });

  test('with pipelining allowed, a partial plaintext line does not survive the handshake', async () => {
    const h = await startHarness({ mainCf: tlsCf('may', 'smtpd_forbid_unauth_pipelining = no\n') });
    const c = await h.ehlo();
    c.write('STARTTLS\r\nMAIL FROM:<evil@x.te');
    assert.equal((await c.read()).code, 220);
    await c.startTls(cert.cert);
    c.write('st>\r\n');
    // Were the plaintext half kept, this would be a MAIL command; it is an unknown one.
    assert.equal((await c.read()).text, '500 5.5.2 Error: command not recognized');
    assert.equal((await c.cmd('EHLO client.test')).code, 250);
    c.close();
    await h.stop();
  });

  test('STARTTLS followed by garbage instead of a handshake does not kill the server', async () => {
    const h = await startHarness({ mainCf: tlsCf('may') });
    const c = await h.ehlo();
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    c.write('this is not TLS\r\n\r\n');
    await c.waitClosed();
    const d = await h.ehlo();
    assert.equal((await d.cmd('NOOP')).code, 250);
    d.close();
    await h.stop();
  });

  test('AUTH PLAIN against Dovecot: success, then 503 on a second AUTH', async () => {
    const h = await startHarness({ mainCf: tlsCf('may') + saslCf() });
    const c = await h.ehlo();
    const e = await c.cmd('EHLO client.test');
    assert.ok(e.lines.includes('250-AUTH PLAIN LOGIN'), e.text);
    assert.equal((await c.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`)).text, '235 2.7.0 Authentication successful');
    assert.equal((await c.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`)).text, '503 5.5.1 Error: already authenticated');
    assert.match(dovecot.requests[dovecot.requests.length - 1], /^AUTH\t\d+\tPLAIN\tservice=smtp\tnologin\tlip=127\.0\.0\.1\trip=127\.0\.0\.1\tlport=\d+\trport=\d+\tresp=/);
    await c.cmd('MAIL FROM:<alice@client.test>');
    await c.cmd('RCPT TO:<u@p.test>');
    assert.equal(h.engine.seen[h.engine.seen.length - 1].saslUsername, 'alice');
    assert.equal(h.engine.seen[h.engine.seen.length - 1].saslMethod, 'PLAIN');
    c.close();
    await h.stop();
  });

  test('AUTH LOGIN through 334 challenges; wrong password gets 535 5.7.8', async () => {
    const h = await startHarness({ mainCf: saslCf() });
    const c = await h.ehlo();
    assert.equal((await c.cmd('AUTH LOGIN')).text, `334 ${b64('Username:')}`);
    assert.equal((await c.cmd(b64('bob'))).text, `334 ${b64('Password:')}`);
    assert.equal((await c.cmd(b64('wrong'))).text, '535 5.7.8 Error: authentication failed: Invalid credentials');
    await h.waitLog(/^warning: unknown\[127\.0\.0\.1\]: SASL LOGIN authentication failed: Invalid credentials$/);
    assert.equal((await c.cmd(`AUTH LOGIN ${b64('bob')}`)).text, `334 ${b64('Password:')}`);
    assert.equal((await c.cmd(b64('hunter2'))).text, '235 2.7.0 Authentication successful');
    c.close();
    await h.stop();
  });

  test('AUTH edge cases: abort, bad base64, unknown mechanism, no HELO, tls_auth_only', async () => {
    const h = await startHarness({ mainCf: saslCf() });
    const { c } = await h.open();
    assert.equal((await c.cmd('AUTH PLAIN')).text, '503 5.5.1 Error: send HELO/EHLO first');
    await c.cmd('EHLO client.test');
    assert.equal((await c.cmd('AUTH')).text, '501 5.5.4 Syntax: AUTH mechanism');
    assert.equal((await c.cmd('AUTH CRAM-MD5')).text, '535 5.7.8 Error: authentication failed: Invalid authentication mechanism');
    assert.equal((await c.cmd('AUTH PLAIN !!!')).text, '501 5.5.2 Cannot decode response');
    assert.equal((await c.cmd('AUTH PLAIN')).text, '334 ');
    assert.equal((await c.cmd('*')).text, '501 5.7.0 Authentication aborted');
    c.close();
    await h.stop();
    const h2 = await startHarness({ mainCf: tlsCf('may') + saslCf('smtpd_tls_auth_only = yes\n') });
    const d = await h2.ehlo();
    const e = await d.cmd('EHLO client.test');
    assert.ok(!e.lines.some((l) => l.includes('AUTH')));
    assert.equal((await d.cmd('AUTH PLAIN')).text, '538 5.7.11 Encryption required for requested authentication mechanism');
    d.close();
    await h2.stop();
  });

  test('an unreachable Dovecot server: AUTH not offered, AUTH answered 454 4.7.0', async () => {
    const h = await startHarness({ mainCf: 'smtpd_sasl_auth_enable = yes\nsmtpd_sasl_path = inet:127.0.0.1:1\n' });
    const c = await h.ehlo();
    assert.ok(!(await c.cmd('EHLO client.test')).lines.some((l) => l.includes('AUTH')));
    assert.equal((await c.cmd('AUTH PLAIN')).text, '535 5.7.8 Error: authentication failed: Invalid authentication mechanism');
    c.close();
    await h.stop();
    const client = new DovecotAuthClient({ path: 'inet:127.0.0.1:1', timeoutMs: 500 });
    const step = await client.start('PLAIN', b64('\0a\0b'), { secured: false });
    assert.equal(step.kind, 'fail');
    assert.equal(step.kind === 'fail' && step.temporary, true);
    client.close();
    await sleep(10);
  });
});
