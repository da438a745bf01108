// Interop: a real Postfix 3.7 as the primary MX behind Backstop. An isolated instance (own
// config, queue and mailboxes; bench/harness/postfix.ts) listens on 127.0.0.2 and delivers
// alice's and bob's mail to Maildirs through virtual(8); other users of primary.test get
// Postfix's own "550 5.1.1 ... User unknown in virtual mailbox table". DNS for both servers is a
// dnsmasq on loopback (Postfix sees it through a private mount namespace).
// Checks: Backstop's probes get Postfix's answers (and the cache keeps Postfix's text), mail
// queued while Postfix is stopped reaches its mailboxes when it is back, and a message carrying
// SMTP-smuggling bytes arrives at Postfix as exactly one message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsSandbox } from '../../bench/harness/sandbox.js';
import { startPostfix, primaryMx, type PostfixInstance } from '../../bench/harness/postfix.js';
import { RawClient, talk } from '../helpers/smtp-client.js';
import { freePort, waitFor, sleep } from '../helpers/net.js';
import { requireProgram, restartPostfix, startBackstopNode, type BackstopNode } from './helpers/peers.js';

const ZONE = {
  'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] as Array<[number, string]> },
  'mx1.primary.test': { A: ['127.0.0.2'] },
  'mx2.backup.test': { A: ['127.0.0.1'] },
  'sender.test': { MX: [[10, 'mx.sender.test']] as Array<[number, string]> },
  'mx.sender.test': { A: ['127.0.0.6'] },
};

/** One message through a scripted session; returns the queue id. */
async function send(port: number, rcpts: string[], content: string): Promise<string> {
  // Byte-exact (talk()'s data() would turn every LF into CRLF and hide the smuggling bytes).
  const { c: s } = await RawClient.open(port, '127.0.0.1', { timeoutMs: 15_000 });
  try {
    assert.match(await s.say('EHLO client.test'), /^250/);
    assert.match(await s.say('MAIL FROM:<someone@sender.test>'), /^250/);
    for (const r of rcpts) assert.match(await s.say(`RCPT TO:<${r}>`), /^250 /, r);
    assert.match(await s.say('DATA'), /^354/);
    // The content exactly as given, then the one real terminator.
    s.write(content + '\r\n.\r\n');
    const reply = await s.readText();
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(reply);
    assert.ok(m, reply);
    // Nothing smuggled: the next reply is QUIT's, not a stray reply to hidden commands.
    assert.match(await s.say('QUIT'), /^221 /);
    return m[1];
  } finally {
    s.close();
  }
}

test('Postfix as the primary MX: probes, queued mail after an outage, smuggling bytes', { timeout: 150_000 }, async (t) => {
  requireProgram('postfix');
  requireProgram('dnsmasq');
  const primaryPort = await freePort('127.0.0.2');
  const port = await freePort();
  // A fixed address of its own: two suites picking the first free one at once could collide.
  const dns = await startDnsSandbox({ zone: ZONE, address: '127.0.53.41' });
  let pf: PostfixInstance | undefined;
  let bs: BackstopNode | undefined;
  try {
    const setup = primaryMx({ hostname: 'mx1.primary.test', domain: 'primary.test', users: ['alice', 'bob'] });
    pf = await startPostfix({
      name: 'primary', sandbox: dns,
      ...setup,
      // Postfix 3.9's default: a client that pipelines where RFC 2920 does not allow it is cut off.
      main: { ...setup.main, smtpd_forbid_unauth_pipelining: 'yes' },
      services: [`127.0.0.2:${primaryPort} inet n - n - - smtpd`],
    });
    // One connection to the primary: the queued messages after the outage share it, each one's
    // MAIL, RCPT and DATA sent behind the previous end of data.
    bs = await startBackstopNode({ name: 'mx2', port, dns: dns.servers, primaryPort, main: { smtpd_forbid_bare_newline: 'normalize', default_destination_concurrency_limit: '1' } });
    const primary = pf;
    const backup = bs;

    await t.test('probes: deliverable and undeliverable with Postfix\'s text, cached', async () => {
      const s = await talk(port);
      try {
        await s.cmd('EHLO client.test');
        assert.match(await s.cmd('MAIL FROM:<someone@sender.test>'), /^250/);
        assert.equal(await s.cmd('RCPT TO:<alice@primary.test>'), '250 2.1.5 Ok');
        assert.equal(await s.cmd('RCPT TO:<bob@primary.test>'), '250 2.1.5 Ok');
        assert.equal(await s.cmd('RCPT TO:<nobody@primary.test>'),
          `550 5.1.1 <nobody@primary.test>: Recipient address rejected: undeliverable address: host mx1.primary.test[127.0.0.2] said: 550 5.1.1 <nobody@primary.test>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)`);
      } finally {
        s.close();
      }
      // Postfix saw the probes: RCPT from Backstop, the unknown user rejected by its smtpd.
      await primary.waitForLog(/NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 550 5\.1\.1 <nobody@primary\.test>|NOQUEUE: reject: RCPT from [^ ]*\[127\.0\.0\.1\]: 550 5\.1\.1 <nobody@primary\.test>/);
      // The cache entry is Postfix's verify(8) format, status:probed:updated:text (0 = ok, 2 = bounce).
      const map = `btree:${backup.dir}/data/verify`;
      const ok = await backup.command('postmap', ['-q', 'alice@primary.test', map]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /^0:\d+:\d+:250 2\.1\.5 Ok\n$/);
      const bad = await backup.command('postmap', ['-q', 'nobody@primary.test', map]);
      assert.equal(bad.code, 0, bad.stderr);
      assert.match(bad.stdout, /^2:\d+:\d+:host mx1\.primary\.test\[127\.0\.0\.2\] said: 550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: User unknown in virtual mailbox table \(in reply to RCPT TO command\)\n$/);
    });

    await t.test('mail queued while Postfix is down reaches its mailboxes when it returns', async () => {
      await primary.stop();
      const ids = [
        await send(port, ['alice@primary.test'], 'Subject: outage 1\r\nMessage-ID: <o1@sender.test>\r\n\r\nfirst\r\n'),
        await send(port, ['bob@primary.test'], 'Subject: outage 2\r\nMessage-ID: <o2@sender.test>\r\n\r\nsecond\r\n'),
        await send(port, ['alice@primary.test', 'bob@primary.test'], 'Subject: outage 3\r\nMessage-ID: <o3@sender.test>\r\n\r\nthird\r\n'),
      ];
      for (const id of ids) await backup.waitForLog(new RegExp(`${id}: to=<[a-z]+@primary\\.test>.*status=deferred`), 20_000);
      assert.equal(primary.mailbox('alice@primary.test').length, 0);

      await restartPostfix(primary, dns, '127.0.0.2', primaryPort);
      for (const id of ids) await backup.waitForLog(new RegExp(`${id}: removed`), 30_000);
      // Backstop is done when Postfix queued them; Postfix's virtual(8) delivers a moment later.
      // Each delivery logged once: 4 recipients, 3 messages from Backstop.
      await waitFor(() => primary.countLog(/status=sent \(delivered to maildir\)/) >= 4, 20_000, 'Postfix delivering 4 recipients');
      await sleep(500);
      assert.equal(primary.countLog(/status=sent \(delivered to maildir\)/), 4);
      const alice = primary.mailbox('alice@primary.test');
      const bob = primary.mailbox('bob@primary.test');
      assert.deepEqual(alice.map((m) => /^Subject: (.*)$/m.exec(m)?.[1]).sort(), ['outage 1', 'outage 3']);
      assert.deepEqual(bob.map((m) => /^Subject: (.*)$/m.exec(m)?.[1]).sort(), ['outage 2', 'outage 3']);
      assert.match(alice[0], /^Received: from mx2\.backup\.test \(/m);
      assert.match(backup.log(), /relay=mx1\.primary\.test\[127\.0\.0\.2\]:\d+, .*status=sent \(250 2\.0\.0 Ok: queued as [0-9A-F]+\)/);
      // All three over one connection, pipelined behind each other's end of data: Postfix took
      // it as RFC 2920 pipelining, not as a violation.
      assert.match(backup.log(), /relay=mx1\.primary\.test\[127\.0\.0\.2\]:\d+, conn_use=3, .*status=sent/);
      assert.equal(primary.countLog(/improper command pipelining/), 0, primary.log());
    });

    await t.test('smuggling bytes: one message at Postfix, the hidden commands are body text', async () => {
      const before = { alice: primary.mailbox('alice@primary.test').length, bob: primary.mailbox('bob@primary.test').length };
      const sent = primary.countLog(/status=sent \(delivered to maildir\)/);
      const hidden = (n: number) => `MAIL FROM:<evil${n}@sender.test>\r\nRCPT TO:<bob@primary.test>\r\nDATA\r\nSubject: smuggled ${n}\r\n\r\nsmuggled body ${n}\r\n`;
      const body = [
        'Subject: smuggling\r\nMessage-ID: <smuggle@sender.test>\r\n\r\nstart\r\n',
        `one\n.\r\n${hidden(1)}`, // <LF>.<CR><LF>
        `two\r.\r\n${hidden(2)}`, // <CR>.<CR><LF>
        `three\r\n.\n${hidden(3)}`, // <CR><LF>.<LF>
        `four\n.\n${hidden(4)}`, // <LF>.<LF>
        `five\r\n.\r${hidden(5)}`, // <CR><LF>.<CR>
        'bare\rCR and bare\nLF\r\nend\r\n',
      ].join('');
      const id = await send(port, ['alice@primary.test'], body);
      await backup.waitForLog(new RegExp(`${id}: removed`), 30_000);
      await waitFor(() => primary.countLog(/status=sent \(delivered to maildir\)/) > sent, 20_000, 'Postfix delivering the message');
      await sleep(500);
      const alice = primary.mailbox('alice@primary.test');
      assert.equal(alice.length, before.alice + 1, 'exactly one new message for alice');
      assert.equal(primary.mailbox('bob@primary.test').length, before.bob, 'nothing for bob (the smuggled recipient)');
      assert.equal(primary.countLog(/status=sent \(delivered to maildir\)/), sent + 1);
      const msg = alice.find((m) => m.includes('<smuggle@sender.test>'));
      assert.ok(msg, 'the message arrived');
      for (let n = 1; n <= 5; n++) assert.ok(msg.includes(`MAIL FROM:<evil${n}@sender.test>`), `hidden commands ${n} are part of the body`);
      // The lone dots survive as body lines (dot-stuffed on the wire, unstuffed by Postfix).
      assert.ok(/^one\n\.\nMAIL FROM:<evil1@sender\.test>$/m.test(msg), msg);
      assert.ok(/^two\n\.\nMAIL FROM:<evil2@sender\.test>$/m.test(msg), msg);
      assert.ok(/^end$/m.test(msg));
      assert.equal(primary.countLog(/from=<evil\d@sender\.test>/), 0);
    });
  } catch (err) {
    console.error(`--- backstop log ---\n${bs?.log().slice(-6000)}\n--- postfix log ---\n${pf?.log().slice(-6000)}`);
    throw err;
  } finally {
    await bs?.stop();
    bs?.cleanup();
    await pf?.stop();
    pf?.cleanup();
    await dns.stop();
  }
});
