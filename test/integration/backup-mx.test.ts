// The tutorial's whole story, end to end, through the real `backstop start` process: DNS on
// loopback says primary.test's MX are mx1 (127.0.0.2, preference 10) and us (127.0.0.1,
// preference 20). The primary is an SMTP sink on 127.0.0.2 that knows alice and bob.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer } from '../helpers/dnsserver.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { talk } from '../helpers/smtp-client.js';
import { freePort } from '../helpers/net.js';
import { makeConfigDir, startServer } from '../helpers/server.js';
import { runCli } from '../helpers/cli.js';

test('backup MX: verify, queue while the primary is down, deliver within seconds of its return', { timeout: 90_000 }, async () => {
  const dns = await startDnsServer({
    'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
    'mx1.primary.test': { A: ['127.0.0.2'] },
    'mx2.backup.test': { A: ['127.0.0.1'] },
    'other.test': { MX: [[10, 'mx.other.test']] },
    'mx.other.test': { A: ['127.0.0.5'] },
    'sender.test': { MX: [[10, 'mx.sender.test']] },
    'mx.sender.test': { A: ['127.0.0.6'] },
  });
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': [
      'myhostname = mx2.backup.test',
      'mydestination =',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mynetworks = 127.0.0.254/32',
      'queue_directory = spool',
      'data_directory = data',
      `backstop_dns_servers = ${dns.servers}`,
      'backstop_dns_timeout = 2s',
      // Deliver to the primary's port: MX lookup of primary.test, then that port.
      'transport_maps = inline:{ primary.test=smtp:primary.test:' + primaryPort + ' }',
      'permit_mx_backup_networks = 127.0.0.2/32',
      'address_verify_map = btree:$data_directory/verify',
      'address_verify_poll_count = 2',
      'address_verify_poll_delay = 1s',
      'smtpd_relay_restrictions = permit_mynetworks, permit_mx_backup, reject_unauth_destination',
      'smtpd_recipient_restrictions = permit_mynetworks, reject_unverified_recipient, permit_mx_backup, reject_unauth_destination, permit',
      'unverified_recipient_reject_code = 550',
      'backstop_destination_probe_interval = 1s',
      'minimal_backoff_time = 60s',
      'smtpd_error_sleep_time = 0s',
    ].join('\n') + '\n',
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const server = await startServer(dir, port);
  let sink: Sink | undefined;
  try {
    // 1. Primary down, recipient never seen: 450, never 5xx.
    let s = await talk(port);
    assert.match(s.greeting, /^220 mx2\.backup\.test ESMTP/);
    assert.match(await s.cmd('EHLO client.test'), /^250/);
    assert.match(await s.cmd('MAIL FROM:<someone@sender.test>'), /^250/);
    assert.match(await s.cmd('RCPT TO:<carol@primary.test>'), /^450 4\.1\.1 <carol@primary\.test>: Recipient address rejected: unverified address: connect to mx1\.primary\.test\[127\.0\.0\.2\]:\d+: Connection refused$/);
    // 2. A domain we do not back up: relay denied.
    assert.equal(await s.cmd('RCPT TO:<x@other.test>'), '554 5.7.1 <x@other.test>: Relay access denied');
    // The open-relay tricks through our own domain are denied too.
    for (const trick of ['x%other.test@primary.test', 'other.test!x@primary.test', '@primary.test:x@other.test', '"x@other.test"@primary.test']) {
      assert.match(await s.cmd(`RCPT TO:<${trick}>`), /^(554 5\.7\.1 .*Relay access denied|450 |550 )/, trick);
    }
    s.close();

    // 3. Primary up: alice verified (and cached), nobody refused with the primary's text.
    sink = await startSink({ host: '127.0.0.2', port: primaryPort, users: ['alice@primary.test', 'bob@primary.test', 'carol@primary.test'] });
    s = await talk(port);
    await s.cmd('EHLO client.test');
    await s.cmd('MAIL FROM:<someone@sender.test>');
    assert.match(await s.cmd('RCPT TO:<alice@primary.test>'), /^250 2\.1\.5 Ok/);
    assert.match(await s.cmd('RCPT TO:<nobody@primary.test>'), /^550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: undeliverable address: host .*said: 550 5\.1\.1/);
    s.close();
    await sink.close();
    sink = undefined;

    // 4. Primary down again: alice is answered from the cache and her mail is queued.
    s = await talk(port);
    await s.cmd('EHLO client.test');
    await s.cmd('MAIL FROM:<someone@sender.test>');
    assert.match(await s.cmd('RCPT TO:<alice@primary.test>'), /^250/);
    assert.match(await s.cmd('DATA'), /^354/);
    const reply = await s.data('Subject: while you were out\r\nMessage-ID: <m1@sender.test>\r\n\r\nhello alice\r\n');
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(reply);
    assert.ok(m, reply);
    assert.match(await s.cmd('QUIT'), /^221/);
    s.close();
    await server.waitForLog(new RegExp(`${m[1]}: to=<alice@primary\\.test>.*status=deferred`), 20_000);
    const q = await runCli(['postqueue', '-c', dir, '-p']);
    assert.match(q.stdout, new RegExp(`^${m[1]}\\s`, 'm'));

    // 5. The primary returns: delivered within seconds, no command needed.
    const back = Date.now();
    sink = await startSink({ host: '127.0.0.2', port: primaryPort, users: ['alice@primary.test', 'bob@primary.test', 'carol@primary.test'] });
    const [msg] = await sink.waitFor(1, 15_000);
    assert.ok(Date.now() - back < 15_000);
    assert.deepEqual(msg.to, ['alice@primary.test']);
    assert.match(msg.raw.toString(), /hello alice/);
    await server.waitForLog(new RegExp(`${m[1]}: removed`), 10_000);
    const empty = await runCli(['postqueue', '-c', dir, '-p']);
    assert.match(empty.stdout, /Mail queue is empty/);

    // 6. Better than Postfix: carol's probe failed only because the primary was down; her DEFER
    // entry was re-probed when the primary answered (Postfix keeps it for 3 hours).
    await server.waitForLog(/to=<carol@primary\.test>.*status=deliverable/, 15_000);
    s = await talk(port);
    await s.cmd('EHLO client.test');
    await s.cmd('MAIL FROM:<someone@sender.test>');
    assert.match(await s.cmd('RCPT TO:<carol@primary.test>'), /^250/);
    s.close();
  } finally {
    await server.stop();
    await sink?.close();
    await dns.close();
    server.cleanup();
  }
});
