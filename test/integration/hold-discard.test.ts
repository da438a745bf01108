// access(5) HOLD and DISCARD through the whole server: HOLD parks the message in the hold queue
// (postqueue -p marks it with '!'), DISCARD claims success and keeps nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer } from '../helpers/dnsserver.js';
import { talk } from '../helpers/smtp-client.js';
import { freePort } from '../helpers/net.js';
import { makeConfigDir, startServer } from '../helpers/server.js';
import { runCli } from '../helpers/cli.js';

test('HOLD and DISCARD actions from an access table', { timeout: 60_000 }, async () => {
  const dns = await startDnsServer({});
  const port = await freePort();
  const dir = makeConfigDir({
    'main.cf': [
      'myhostname = mx2.backup.test',
      'mydestination =',
      'inet_interfaces = 127.0.0.1',
      'mynetworks = 127.0.0.254/32',
      'queue_directory = spool',
      'data_directory = data',
      `backstop_dns_servers = ${dns.servers}`,
      'relay_domains = relay.test',
      // Nothing listens there: held and discarded mail must not be tried anyway.
      'transport_maps = inline:{ relay.test=smtp:[127.0.0.2]:9 }',
      'smtpd_recipient_restrictions = check_recipient_access inline:{ hold@relay.test=HOLD, drop@relay.test=DISCARD }, reject_unauth_destination',
      'smtpd_error_sleep_time = 0s',
    ].join('\n') + '\n',
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const server = await startServer(dir, port);
  try {
    const send = async (rcpt: string) => {
      const s = await talk(port);
      await s.cmd('EHLO client.test');
      await s.cmd('MAIL FROM:<a@sender.test>');
      assert.match(await s.cmd(`RCPT TO:<${rcpt}>`), /^250/);
      await s.cmd('DATA');
      const r = await s.data('Subject: x\r\n\r\nbody\r\n');
      s.close();
      const m = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(r);
      assert.ok(m, r);
      return m[1];
    };
    const held = await send('hold@relay.test');
    await server.waitForLog(new RegExp(`NOQUEUE: hold: RCPT from .*: <hold@relay\\.test>: Recipient address triggers HOLD action; from=<a@sender\\.test> to=<hold@relay\\.test>`));
    const dropped = await send('drop@relay.test');
    await server.waitForLog(new RegExp(`NOQUEUE: discard: RCPT from .*: <drop@relay\\.test>: Recipient address triggers DISCARD action`));
    // A bounce of one of our own probes: exempt from the restrictions (no relay_domains entry
    // covers mx2.backup.test here), accepted and discarded.
    const bounced = await send('double-bounce@mx2.backup.test');
    await server.waitForLog(new RegExp(`${bounced}: discard: mail to the address verification probe sender <double-bounce@mx2\\.backup\\.test>`));
    const q = await runCli(['postqueue', '-c', dir, '-p']);
    assert.doesNotMatch(q.stdout, new RegExp(bounced));
    assert.match(q.stdout, new RegExp(`^${held}!\\s`, 'm'), q.stdout);
    assert.doesNotMatch(q.stdout, new RegExp(dropped));
    assert.match(q.stdout, /-- \d+ Kbytes in 1 Request\./);
    assert.doesNotMatch(server.log(), new RegExp(`${held}: to=<`), 'held mail is not delivered');
  } finally {
    await server.stop();
    await dns.close();
    server.cleanup();
  }
});
