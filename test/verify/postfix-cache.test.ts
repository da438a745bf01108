// `backstop start` on a verify cache that Postfix wrote (issue 16): the real server, with
// address_verify_map = lmdb:PATH where PATH.lmdb came from Debian's postfix-lmdb, answers RCPT
// from Postfix's entries — a known mailbox is accepted, a known-bad one refused with Postfix's
// recorded reply — while the primary is down (an address it does not know gets 450). Skipped
// without Postfix's lmdb map type or the 0.9-format binding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startDnsServer } from '../helpers/dnsserver.js';
import { talk } from '../helpers/smtp-client.js';
import { freePort } from '../helpers/net.js';
import { makeConfigDir, startServer } from '../helpers/server.js';
import { lmdbFormat } from '../../src/tables/index.js';

const POSTMAP = '/usr/sbin/postmap';
const skip = !existsSync(POSTMAP) || lmdbFormat() !== '0.9' ? "needs Postfix's postmap with lmdb (postfix-lmdb) and the 0.9-format binding" : false;

test("backstop start answers RCPT from a verify cache Postfix's postmap wrote", { skip, timeout: 60_000 }, async () => {
  const dns = await startDnsServer({
    'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
    'mx1.primary.test': { A: ['127.0.0.2'] },
    'mx2.backup.test': { A: ['127.0.0.1'] },
  });
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': [
      'myhostname = mx2.backup.test', 'mydestination =', 'inet_interfaces = 127.0.0.1', 'inet_protocols = ipv4',
      'mynetworks = 127.0.0.254/32', 'queue_directory = spool', 'data_directory = data',
      `backstop_dns_servers = ${dns.servers}`, 'backstop_dns_timeout = 2s',
      `transport_maps = inline:{ primary.test=smtp:primary.test:${primaryPort} }`,
      'permit_mx_backup_networks = 127.0.0.2/32',
      'address_verify_map = lmdb:$data_directory/verify',
      'address_verify_poll_count = 1',
      'unverified_recipient_reject_code = 550',
      'smtpd_relay_restrictions = permit_mynetworks, permit_mx_backup, reject_unauth_destination',
      'smtpd_recipient_restrictions = permit_mynetworks, reject_unverified_recipient, permit_mx_backup, reject_unauth_destination',
      'smtpd_error_sleep_time = 0s',
    ].join('\n') + '\n',
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  // Postfix verify(8)'s records: status:probed:updated:text (0 = deliverable, 2 = undeliverable).
  const now = Math.floor(Date.now() / 1000) - 60;
  mkdirSync(join(dir, 'data'), { mode: 0o700 });
  writeFileSync(join(dir, 'data', 'verify'), `alice@primary.test 0:0:${now}:250 2.1.5 Ok\nnobody@primary.test 2:0:${now}:host mx1.primary.test[127.0.0.2] said: 550 5.1.1 <nobody@primary.test>: no such user\n`);
  const pfconf = join(dir, 'postfix');
  mkdirSync(pfconf);
  writeFileSync(join(pfconf, 'main.cf'), '');
  const m = spawnSync(POSTMAP, ['-c', pfconf, `lmdb:${join(dir, 'data', 'verify')}`], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  rmSync(join(dir, 'data', 'verify'));
  const server = await startServer(dir, port);
  try {
    const s = await talk(port);
    assert.match(await s.cmd('EHLO client.test'), /^250/);
    assert.match(await s.cmd('MAIL FROM:<someone@sender.test>'), /^250/);
    assert.match(await s.cmd('RCPT TO:<alice@primary.test>'), /^250 2\.1\.5 Ok/);
    assert.match(await s.cmd('RCPT TO:<nobody@primary.test>'), /^550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: undeliverable address: host mx1\.primary\.test\[127\.0\.0\.2\] said: 550 5\.1\.1/);
    assert.match(await s.cmd('RCPT TO:<carol@primary.test>'), /^450 4\.1\.1 <carol@primary\.test>: Recipient address rejected: unverified address/);
    await s.cmd('QUIT');
  } finally {
    await server.stop();
    server.cleanup();
    await dns.close();
  }
});
