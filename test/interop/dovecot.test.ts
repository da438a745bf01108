// Interop: Dovecot's auth service as Backstop's SASL server (smtpd_sasl_type = dovecot,
// smtpd_sasl_path = inet:127.0.0.1:PORT; a minimal dovecot.conf with a passwd-file passdb and
// userdb, run in the foreground with its own base_dir). permit_sasl_authenticated lets an
// authenticated client relay; without AUTH, or after a wrong password (535), relaying is denied.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type TestDnsServer } from '../helpers/dnsserver.js';
import { talk } from '../helpers/smtp-client.js';
import { requireProgram, startBackstopNode, startDovecot, type BackstopNode, type Peer } from './helpers/peers.js';
import { freePort } from '../helpers/net.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

test('Dovecot auth: permit_sasl_authenticated relays, a wrong password gets 535', { timeout: 90_000 }, async (t) => {
  requireProgram('dovecot');
  let dns: TestDnsServer | undefined;
  let dovecot: Peer | undefined;
  let bs: BackstopNode | undefined;
  try {
    dns = await startDnsServer({ 'primary.test': { MX: [[10, 'mx1.primary.test']] }, 'mx1.primary.test': { A: ['127.0.0.2'] } });
    dovecot = await startDovecot({ port: await freePort(), users: { sue: 'secret', 'bob@sender.test': 'hunter2' } });
    const port = await freePort();
    bs = await startBackstopNode({
      name: 'mx2', port, dns: dns.servers, primaryPort: await freePort('127.0.0.2'),
      main: {
        smtpd_sasl_auth_enable: 'yes',
        smtpd_sasl_type: 'dovecot',
        smtpd_sasl_path: `inet:127.0.0.1:${dovecot.port}`,
        smtpd_relay_restrictions: 'permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
        smtpd_recipient_restrictions: 'permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
      },
    });
    const backup = bs;
    const dc = dovecot;

    await t.test('without AUTH: relay access denied; AUTH is offered with Dovecot\'s mechanisms', async () => {
      const s = await talk(port);
      try {
        const ehlo = await s.cmd('EHLO client.test');
        assert.match(ehlo, /^250-AUTH PLAIN LOGIN$/m);
        await s.cmd('MAIL FROM:<sue@sender.test>');
        assert.equal(await s.cmd('RCPT TO:<friend@elsewhere.test>'), '554 5.7.1 <friend@elsewhere.test>: Relay access denied');
      } finally {
        s.close();
      }
    });

    await t.test('AUTH PLAIN with the right password: 235, then relaying is permitted', async () => {
      const s = await talk(port);
      try {
        await s.cmd('EHLO client.test');
        assert.equal(await s.cmd(`AUTH PLAIN ${b64('\0sue\0secret')}`), '235 2.7.0 Authentication successful');
        assert.equal(await s.cmd('MAIL FROM:<sue@sender.test>'), '250 2.1.0 Ok');
        assert.equal(await s.cmd('RCPT TO:<friend@elsewhere.test>'), '250 2.1.5 Ok');
        assert.match(await s.cmd('DATA'), /^354 /);
        const r = await s.data('Subject: relayed for an authenticated user\r\n\r\nhi\r\n');
        const id = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(r)?.[1];
        assert.ok(id, r);
        await backup.waitForLog(new RegExp(`${id}: client=unknown\\[127\\.0\\.0\\.1\\], sasl_method=PLAIN, sasl_username=sue`));
      } finally {
        s.close();
      }
    });

    await t.test('AUTH LOGIN (Dovecot\'s challenges relayed) for a user@domain login', async () => {
      const s = await talk(port);
      try {
        await s.cmd('EHLO client.test');
        assert.equal(await s.cmd('AUTH LOGIN'), '334 VXNlcm5hbWU6');
        assert.equal(await s.cmd(b64('bob@sender.test')), '334 UGFzc3dvcmQ6');
        assert.equal(await s.cmd(b64('hunter2')), '235 2.7.0 Authentication successful');
        await s.cmd('MAIL FROM:<bob@sender.test>');
        assert.equal(await s.cmd('RCPT TO:<friend@elsewhere.test>'), '250 2.1.5 Ok');
      } finally {
        s.close();
      }
    });

    await t.test('wrong password: 535 5.7.8, and still no relaying', async () => {
      const s = await talk(port);
      try {
        await s.cmd('EHLO client.test');
        assert.equal(await s.cmd(`AUTH PLAIN ${b64('\0sue\0wrong')}`), '535 5.7.8 Error: authentication failed: authentication failure');
        await s.cmd('MAIL FROM:<sue@sender.test>');
        assert.equal(await s.cmd('RCPT TO:<friend@elsewhere.test>'), '554 5.7.1 <friend@elsewhere.test>: Relay access denied');
      } finally {
        s.close();
      }
      // Dovecot did the checking, and was told the client's address (rip).
      await backup.waitForLog(/warning: unknown\[127\.0\.0\.1\]: SASL PLAIN authentication failed: authentication failure/);
      assert.match(dc.output(), /auth: Info: passwd-file\(sue,127\.0\.0\.1\): Password mismatch/);
    });
  } catch (err) {
    console.error(`--- backstop log ---\n${bs?.log().slice(-4000)}\n--- dovecot ---\n${dovecot?.output().slice(-3000)}`);
    throw err;
  } finally {
    await bs?.stop();
    bs?.cleanup();
    await dovecot?.stop();
    await dns?.close();
  }
});
