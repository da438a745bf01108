// Interop: a real Postfix 3.7 as the sending MTA. An isolated instance for sender.test (its smtpd
// on 127.0.0.3, sender.test's MX, mailboxes through virtual(8)) relays mail for primary.test to
// Backstop, the domain's backup MX, through transport_maps. The primary is a scripted SMTP
// server on 127.0.0.2 that refuses, after DATA, any message whose subject says "bounce me".
// Checks: Postfix's DSN parameters (ENVID, RET, NOTIFY, ORCPT) cross Backstop to the primary;
// Backstop's DSN for the refused message is delivered by Postfix to the sender's mailbox as a
// null-sender multipart/report that carries Postfix's envelope id and the original headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsSandbox } from '../../bench/harness/sandbox.js';
import { startPostfix, sendingMta, type PostfixInstance } from '../../bench/harness/postfix.js';
import { freePort, waitFor, sleep } from '../helpers/net.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { requireProgram, startBackstopNode, type BackstopNode } from './helpers/peers.js';

const ZONE = {
  'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] as Array<[number, string]> },
  'mx1.primary.test': { A: ['127.0.0.2'] },
  'mx2.backup.test': { A: ['127.0.0.1'] },
  'sender.test': { MX: [[10, 'mx.sender.test']] as Array<[number, string]> },
  'mx.sender.test': { A: ['127.0.0.3'] },
};

test('Postfix as the sending MTA: relays through Backstop, receives its DSN bounces', { timeout: 150_000 }, async (t) => {
  requireProgram('postfix');
  requireProgram('dnsmasq');
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const senderPort = await freePort('127.0.0.3');
  // A fixed address of its own: two suites picking the first free one at once could collide.
  const dns = await startDnsSandbox({ zone: ZONE, address: '127.0.53.42' });
  let sink: Sink | undefined;
  let pf: PostfixInstance | undefined;
  let bs: BackstopNode | undefined;
  try {
    sink = await startSink({
      host: '127.0.0.2', port: primaryPort, users: ['alice@primary.test'],
      dataReply: (m) => (/^Subject: bounce me/m.test(m.raw.toString('latin1')) ? { code: 554, text: '5.7.1 Message refused by policy' } : undefined),
    });
    bs = await startBackstopNode({
      name: 'mx2', port, dns: dns.servers, primaryPort,
      main: { transport_maps: `inline:{ primary.test=smtp:primary.test:${primaryPort}, sender.test=smtp:sender.test:${senderPort} }` },
    });
    pf = await startPostfix({
      name: 'sender', sandbox: dns,
      ...sendingMta({ hostname: 'mx.sender.test', domain: 'sender.test', users: ['sue'], transport: { 'primary.test': `smtp:[127.0.0.1]:${port}` } }),
      services: [`127.0.0.3:${senderPort} inet n - n - - smtpd`],
    });
    const sender = pf;
    const backup = bs;
    const primary = sink;

    await t.test('Postfix relays to Backstop; DSN parameters reach the primary', async () => {
      await sender.command('sendmail', ['-f', 'sue@sender.test', '-i', '-N', 'success,failure', '-R', 'hdrs', '-V', 'env-ok-1', '--', 'alice@primary.test'],
        { input: 'From: sue@sender.test\nTo: alice@primary.test\nSubject: hello through the backup\nMessage-ID: <ok1@sender.test>\n\nhi alice\n' });
      const line = await sender.waitForLog(/to=<alice@primary\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent \(250 2\.0\.0 Ok: queued as [0-9A-F]+\)/, 30_000);
      const id = /queued as ([0-9A-F]+)\)/.exec(line)![1];
      await backup.waitForLog(new RegExp(`${id}: removed`), 20_000);
      const [msg] = await primary.waitFor(1, 10_000);
      assert.equal(msg.from, 'sue@sender.test');
      assert.deepEqual(msg.to, ['alice@primary.test']);
      assert.equal(msg.dsn.envid, 'env-ok-1');
      assert.equal(msg.dsn.ret, 'HDRS');
      assert.deepEqual(msg.dsn.rcpt[0].notify?.map((n) => n.toUpperCase()).sort(), ['FAILURE', 'SUCCESS']);
      assert.equal(msg.dsn.rcpt[0].orcpt, 'rfc822;alice@primary.test');
      const raw = msg.raw.toString('latin1');
      // 127.0.0.1's name in the test DNS (dnsmasq's PTR of a host record) is mx2.backup.test.
      assert.match(raw, /^Received: from mx\.sender\.test \(mx2\.backup\.test \[127\.0\.0\.1\]\)\r\n\tby mx2\.backup\.test \(Backstop\) with ESMTP id [0-9A-F]+\r\n\tfor <alice@primary\.test>; /);
      assert.match(raw, /^Received: by mx\.sender\.test \(Postfix, from userid 0\)/m);
      assert.match(raw, /\r\nhi alice\r\n/);
    });

    await t.test('Backstop\'s bounce lands in the sender\'s mailbox as a DSN', async () => {
      await sender.command('sendmail', ['-f', 'sue@sender.test', '-i', '-N', 'failure', '-R', 'hdrs', '-V', 'env-bounce-7', '--', 'alice@primary.test'],
        { input: 'From: sue@sender.test\nTo: alice@primary.test\nSubject: bounce me please\nMessage-ID: <b1@sender.test>\n\nthis body is not returned (RET=HDRS)\n' });
      const line = await sender.waitForLog(/to=<alice@primary\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent \(250 2\.0\.0 Ok: queued as [0-9A-F]+\)/, 30_000);
      void line;
      // Backstop: the primary's 554 after DATA is a hard failure, a DSN goes to sue.
      await backup.waitForLog(/to=<alice@primary\.test>, relay=mx1\.primary\.test\[127\.0\.0\.2\]:\d+, .*status=bounced \(host mx1\.primary\.test\[127\.0\.0\.2\] said: 554 5\.7\.1 Message refused by policy \(in reply to end of DATA command\)\)/, 20_000);
      await backup.waitForLog(/sender non-delivery notification: [0-9A-F]+/, 10_000);
      // Postfix receives it from <> and delivers it to sue's Maildir.
      await sender.waitForLog(/from=<>, size=\d+, nrcpt=1/, 30_000);
      await sender.waitForLog(/to=<sue@sender\.test>, relay=virtual, .*status=sent \(delivered to maildir\)/, 20_000);
      await waitFor(() => sender.mailbox('sue@sender.test').length >= 1, 5000, "the DSN in sue's Maildir");
      await sleep(200);
      const box = sender.mailbox('sue@sender.test');
      assert.equal(box.length, 1);
      const dsn = box[0];
      assert.match(dsn, /^Return-Path: <>$/m);
      assert.match(dsn, /^From: MAILER-DAEMON@mx2\.backup\.test \(Mail Delivery System\)$/m);
      assert.match(dsn, /^To: sue@sender\.test$/m);
      assert.match(dsn, /^Content-Type: multipart\/report; report-type=delivery-status;\n\tboundary="([^"]+)"$/m);
      const boundary = /boundary="([^"]+)"/.exec(dsn)![1];
      const parts = dsn.split(`--${boundary}`);
      // Preamble, the human-readable part, message/delivery-status, the returned headers, the end.
      assert.equal(parts.length, 5, dsn);
      assert.match(parts[2], /^\nContent-Description: Delivery report\nContent-Type: message\/delivery-status\n/);
      assert.match(parts[2], /^Reporting-MTA: dns; mx2\.backup\.test$/m);
      assert.match(parts[2], /^Original-Envelope-Id: env-bounce-7$/m);
      assert.match(parts[2], /^Final-Recipient: rfc822; alice@primary\.test$/m);
      assert.match(parts[2], /^Original-Recipient: rfc822;alice@primary\.test$/m);
      assert.match(parts[2], /^Action: failed$/m);
      assert.match(parts[2], /^Status: 5\.7\.1$/m);
      assert.match(parts[2], /^Remote-MTA: dns; mx1\.primary\.test$/m);
      assert.match(parts[2], /^Diagnostic-Code: smtp; 554 5\.7\.1 Message refused by policy$/m);
      // RET=HDRS: only the headers come back.
      assert.match(parts[3], /^\nContent-Description: Undelivered Message Headers\nContent-Type: text\/rfc822-headers\n/);
      assert.match(parts[3], /^Message-ID: <b1@sender\.test>$/m);
      assert.doesNotMatch(parts[3], /this body is not returned/);
      assert.equal(parts[4].trim(), '--');
    });
  } catch (err) {
    console.error(`--- backstop log ---\n${bs?.log().slice(-6000)}\n--- postfix log ---\n${pf?.log().slice(-6000)}`);
    throw err;
  } finally {
    await pf?.stop();
    pf?.cleanup();
    await bs?.stop();
    bs?.cleanup();
    await sink?.close();
    await dns.stop();
  }
});
