// A table file replaced by a damaged one while `backstop start` runs (issue 16): the SIGHUP reload
// is refused with a message naming the file (the running configuration stays in force), the
// server keeps running, lookups in that table answer with a temporary failure instead of LMDB
// crashing the process, and compiling the source again brings the table back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { talk } from '../helpers/smtp-client.js';
import { freePort } from '../helpers/net.js';
import { makeConfigDir, startServer } from '../helpers/server.js';
import { runCli } from '../helpers/cli.js';

test('reload with a damaged compiled table: refused, the server stays up, lookups defer, a recompile fixes it', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const dir = makeConfigDir({
    'main.cf': [
      'myhostname = mx2.backup.test', 'mydestination = backup.test', 'inet_interfaces = 127.0.0.1', 'queue_directory = spool',
      'data_directory = data', 'address_verify_map =', 'smtpd_error_sleep_time = 0s',
      'smtpd_recipient_restrictions = check_recipient_access hash:access, reject_unauth_destination',
    ].join('\n') + '\n',
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
    access: 'blocked@backup.test REJECT no thanks\n',
  });
  assert.equal((await runCli(['postmap', `hash:${join(dir, 'access')}`])).code, 0);
  const server = await startServer(dir, port);
  try {
    const rcpt = async (to: string): Promise<string> => {
      const s = await talk(port);
      await s.cmd('EHLO client.test');
      await s.cmd('MAIL FROM:<a@client.test>');
      const r = await s.cmd(`RCPT TO:<${to}>`);
      await s.cmd('QUIT');
      s.close();
      return r;
    };
    assert.match(await rcpt('blocked@backup.test'), /^554 5\.7\.1 <blocked@backup\.test>: Recipient address rejected: no thanks/);
    // A new file (new inode) of random bytes takes the database's place, as a bad copy would.
    const db = join(dir, 'access.lmdb');
    writeFileSync(db + '.new', randomBytes(16384));
    renameSync(db + '.new', db);
    const r = await runCli(['reload', '-c', dir]);
    assert.equal(r.code, 0, r.stderr);
    await server.waitForLog(new RegExp(`${db.replace(/[.]/g, '\\.')}: not an LMDB database .*rebuild it from its text source with: backstop postmap hash:`));
    await server.waitForLog(/reload refused: configuration errors; the running configuration stays in force/);
    await new Promise((res) => setTimeout(res, 1100)); // the table's own change check (1 s)
    assert.match(await rcpt('blocked@backup.test'), /^4\d\d /);
    assert.equal(server.child.exitCode, null, 'the server is still running');
    assert.equal((await runCli(['postmap', `hash:${join(dir, 'access')}`])).code, 0);
    // The good file is in force within seconds: in place, or — for an smtpd worker that runs as
    // mail_owner and may not open root's new file — through a fresh worker that replaces it.
    let after = '';
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; ) {
      await new Promise((res) => setTimeout(res, 500));
      after = await rcpt('blocked@backup.test');
      if (after.startsWith('554')) break;
    }
    assert.match(after, /^554 5\.7\.1 .*no thanks/);
    assert.ok(!/Segmentation|SIGSEGV|SIGBUS/.test(server.log()));
  } finally {
    await server.stop();
    server.cleanup();
  }
});
