// Interop: swaks (the Swiss Army Knife for SMTP) scripted sessions against the real `backstop
// start`: STARTTLS with an openssl-made certificate, AUTH PLAIN/LOGIN checked by a real Dovecot
// auth service (smtpd_sasl_type = dovecot over inet), PIPELINING, DSN parameters, 8BITMIME and
// SMTPUTF8. Asserts swaks' exit codes and transcripts, and what the primary (a scripted SMTP
// server on 127.0.0.2) received from Backstop.
// swaks 20201014 (Debian 12) has no DSN/SMTPUTF8 options: MAIL/RCPT parameters ride in the
// address ("--from 'a@b> RET=HDRS ENVID=x'" makes "MAIL FROM:<a@b> RET=HDRS ENVID=x>"), so the
// last parameter of a line is one whose syntax admits the closing ">" (ENVID, ORCPT are xtext).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type TestDnsServer } from '../helpers/dnsserver.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { makeCert, requireProgram, startBackstopNode, startDovecot, swaks, tempDir, type BackstopNode, type Peer } from './helpers/peers.js';
import { rmSync } from 'node:fs';
import { freePort } from '../helpers/net.js';

test('swaks sessions: STARTTLS, AUTH (Dovecot), PIPELINING, DSN, 8BITMIME, SMTPUTF8', { timeout: 120_000 }, async (t) => {
  requireProgram('swaks');
  requireProgram('dovecot');
  requireProgram('openssl');
  const certDir = tempDir('cert');
  let dns: TestDnsServer | undefined;
  let sink: Sink | undefined;
  let dovecot: Peer | undefined;
  let bs: BackstopNode | undefined;
  try {
    const cert = await makeCert(certDir, 'mx2.backup.test');
    dns = await startDnsServer({
      'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
      'mx1.primary.test': { A: ['127.0.0.2'] },
      'mx2.backup.test': { A: ['127.0.0.1'] },
      'sender.test': { MX: [[10, 'mx.sender.test']] },
      'mx.sender.test': { A: ['127.0.0.6'] },
    });
    const primaryPort = await freePort('127.0.0.2');
    sink = await startSink({ host: '127.0.0.2', port: primaryPort, users: ['alice@primary.test', 'bob@primary.test', 'jörg@primary.test'] });
    dovecot = await startDovecot({ port: await freePort(), users: { sue: 'secret' } });
    const port = await freePort();
    bs = await startBackstopNode({
      name: 'mx2', port, dns: dns.servers, primaryPort,
      main: {
        smtpd_tls_security_level: 'may',
        smtpd_tls_cert_file: cert.certFile,
        smtpd_tls_key_file: cert.keyFile,
        smtpd_sasl_auth_enable: 'yes',
        smtpd_sasl_type: 'dovecot',
        smtpd_sasl_path: `inet:127.0.0.1:${dovecot.port}`,
        smtpd_tls_auth_only: 'yes',
        smtpd_relay_restrictions: 'permit_mynetworks, permit_sasl_authenticated, permit_mx_backup, reject_unauth_destination',
        smtpd_recipient_restrictions: 'permit_mynetworks, permit_sasl_authenticated, reject_unverified_recipient, permit_mx_backup, reject_unauth_destination, permit',
        minimal_backoff_time: '1s',
      },
    });
    const primary = sink;
    const backup = bs;
    const base = ['--server', '127.0.0.1', '--port', String(port), '--ehlo', 'client.test'];
    /** The queue id from swaks' transcript. */
    const queued = (out: string) => {
      const m = /^<[-~] +250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/m.exec(out);
      assert.ok(m, out);
      return m[1];
    };
    const delivered = async (id: string) => {
      await backup.waitForLog(new RegExp(`${id}: to=<[^>]+>, (?:orig_to=<.*>, )?relay=mx1\\.primary\\.test\\[127\\.0\\.0\\.2\\]:\\d+, .*status=sent`), 20_000);
      const m = primary.messages.find((x) => x.raw.toString('latin1').includes(`with ESMTP`) && x.raw.toString('latin1').includes(` id ${id}`));
      assert.ok(m, `message ${id} at the primary`);
      return m;
    };

    await t.test('STARTTLS then AUTH PLAIN through Dovecot: relaying allowed', async () => {
      const r = await swaks([...base, '--tls', '--auth', 'PLAIN', '--auth-user', 'sue', '--auth-password', 'secret',
        '--from', 'sue@sender.test', '--to', 'someone@elsewhere.test', '--header', 'Subject: tls and auth']);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^ -> STARTTLS$/m);
      assert.match(r.out, /^<-  220 2\.0\.0 Ready to start TLS$/m);
      assert.match(r.out, /^=== TLS started with cipher TLSv1\.[23]/m);
      assert.match(r.out, /^<~  250-AUTH PLAIN LOGIN$/m);
      assert.match(r.out, /^<~  235 2\.7\.0 Authentication successful$/m);
      assert.match(r.out, /^ ~> RCPT TO:<someone@elsewhere\.test>\n<~  250 2\.1\.5 Ok$/m);
      const id = queued(r.out);
      await backup.waitForLog(new RegExp(`${id}: client=unknown\\[127\\.0\\.0\\.1\\], sasl_method=PLAIN, sasl_username=sue`));
    });

    await t.test('AUTH only after STARTTLS (smtpd_tls_auth_only): plaintext AUTH is not offered', async () => {
      const r = await swaks([...base, '--auth', 'PLAIN', '--auth-user', 'sue', '--auth-password', 'secret', '--from', 'sue@sender.test', '--to', 'alice@primary.test']);
      assert.equal(r.code, 28, r.out);
      assert.match(r.out, /^<-  250-STARTTLS$/m);
      assert.doesNotMatch(r.out, /250-AUTH/);
      assert.match(r.out, /Host did not advertise authentication/);
    });

    await t.test('wrong password: 535 and swaks exit 28; AUTH LOGIN with the right one works', async () => {
      const bad = await swaks([...base, '--tls', '--auth', 'PLAIN', '--auth-user', 'sue', '--auth-password', 'wrong', '--from', 'sue@sender.test', '--to', 'someone@elsewhere.test']);
      assert.equal(bad.code, 28, bad.out);
      assert.match(bad.out, /^<~\* 535 5\.7\.8 Error: authentication failed: /m);
      await backup.waitForLog(/warning: unknown\[127\.0\.0\.1\]: SASL PLAIN authentication failed: authentication failure$/m);
      const login = await swaks([...base, '--tls', '--auth', 'LOGIN', '--auth-user', 'sue', '--auth-password', 'secret', '--from', 'sue@sender.test', '--to', 'alice@primary.test', '--quit-after', 'AUTH']);
      assert.equal(login.code, 0, login.out);
      assert.match(login.out, /^<~  334 VXNlcm5hbWU6$/m); // "Username:", Dovecot's challenge relayed verbatim
      assert.match(login.out, /^<~  235 2\.7\.0 Authentication successful$/m);
    });

    await t.test('PIPELINING: MAIL, RCPTs and DATA in one group; each reply in order', async () => {
      const r = await swaks([...base, '--pipeline', '--from', 'sue@sender.test', '--to', 'alice@primary.test,nobody@primary.test,bob@primary.test', '--header', 'Subject: pipelined']);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^<-  250-PIPELINING$/m);
      // swaks sends the whole group before it reads any reply.
      assert.match(r.out, / -> MAIL FROM:<sue@sender\.test>\n -> RCPT TO:<alice@primary\.test>\n -> RCPT TO:<nobody@primary\.test>\n -> RCPT TO:<bob@primary\.test>\n -> DATA\n<-  250 2\.1\.0 Ok\n<-  250 2\.1\.5 Ok\n<\*\* 550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: undeliverable address: host mx1\.primary\.test\[127\.0\.0\.2\] said: 550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: User unknown \(in reply to RCPT TO command\)\n/);
      assert.match(r.out, /<-  250 2\.1\.5 Ok\n<-  354 End data with <CR><LF>\.<CR><LF>\n/);
      const msg = await delivered(queued(r.out));
      assert.deepEqual(msg.to.sort(), ['alice@primary.test', 'bob@primary.test']);
    });

    await t.test('DSN parameters: RET, ENVID, NOTIFY, ORCPT accepted and passed to the primary', async () => {
      const r = await swaks([...base, '--tls', '--auth', 'PLAIN', '--auth-user', 'sue', '--auth-password', 'secret',
        '--from', 'sue@sender.test> RET=HDRS ENVID=swaks+2Ddsn', '--to', 'alice@primary.test> NOTIFY=SUCCESS ORCPT=rfc822;alice+40primary.test', '--header', 'Subject: dsn', '--header', 'From: sue@sender.test', '--header', 'To: alice@primary.test']);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^<~  250-DSN$/m);
      assert.match(r.out, /^ ~> MAIL FROM:<sue@sender\.test> RET=HDRS ENVID=swaks\+2Ddsn>\n<~  250 2\.1\.0 Ok$/m);
      const msg = await delivered(queued(r.out));
      assert.equal(msg.dsn.ret, 'HDRS');
      assert.equal(msg.dsn.envid, 'swaks-dsn>');
      assert.deepEqual(msg.dsn.rcpt[0].notify?.map((n) => n.toUpperCase()), ['SUCCESS']);
      assert.equal(msg.dsn.rcpt[0].orcpt, 'rfc822;alice@primary.test>');
      const bad = await swaks([...base, '--from', 'sue@sender.test', '--to', 'alice@primary.test> NOTIFY=SOMETIMES']);
      assert.equal(bad.code, 24, bad.out);
      assert.match(bad.out, /^<\*\* 501 5\.5\.4 Error: Bad NOTIFY parameter syntax$/m);
    });

    await t.test('8BITMIME: BODY=8BITMIME and 8-bit bytes arrive unchanged', async () => {
      const r = await swaks([...base, '--from', 'sue@sender.test> BODY=8BITMIME ENVID=eight', '--to', 'alice@primary.test',
        '--header', 'Subject: 8bit', '--header', 'From: sue@sender.test', '--add-header', 'Content-Type: text/plain; charset=utf-8', '--add-header', 'Content-Transfer-Encoding: 8bit', '--body', 'caf\u00e9 cr\u00e8me br\u00fbl\u00e9e']);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^<-  250-8BITMIME$/m);
      const msg = await delivered(queued(r.out));
      assert.equal(msg.mailArgs.BODY, '8BITMIME');
      assert.ok(msg.raw.includes(Buffer.from('caf\u00e9 cr\u00e8me br\u00fbl\u00e9e', 'utf8')), msg.raw.toString('latin1'));
    });

    await t.test('SMTPUTF8: UTF-8 addresses with SMTPUTF8 accepted and passed on', async () => {
      const r = await swaks([...base, '--tls', '--auth', 'PLAIN', '--auth-user', 'sue', '--auth-password', 'secret',
        '--from', 's\u00f8ren@sender.test> SMTPUTF8 ENVID=utf8', '--to', 'j\u00f6rg@primary.test', '--header', 'Subject: utf8', '--header', 'From: s\u00f8ren@sender.test']);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^<~  250-SMTPUTF8$/m);
      const msg = await delivered(queued(r.out));
      assert.equal(msg.from, 's\u00f8ren@sender.test');
      assert.deepEqual(msg.to, ['j\u00f6rg@primary.test']);
      assert.equal(msg.mailArgs.SMTPUTF8, true);
    });
  } catch (err) {
    console.error(`--- backstop log ---\n${bs?.log().slice(-6000)}\n--- dovecot ---\n${dovecot?.output().slice(-2000)}`);
    throw err;
  } finally {
    await bs?.stop();
    bs?.cleanup();
    await dovecot?.stop();
    await sink?.close();
    await dns?.close();
    rmSync(certDir, { recursive: true, force: true });
  }
});
