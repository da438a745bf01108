// The master through the real CLI: pid file, a second start refused, SIGHUP reload (a broken
// main.cf is refused and the old configuration keeps serving; a good one takes effect for new
// sessions), `backstop stop` ends it cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { talk } from '../helpers/smtp-client.js';
import { freePort } from '../helpers/net.js';
import { makeConfigDir, startServer } from '../helpers/server.js';
import { runCli } from '../helpers/cli.js';

test('start, reload (bad then good), stop', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const mainCf = (banner: string) => [
    'myhostname = mx2.backup.test',
    'mydestination =',
    'inet_interfaces = 127.0.0.1',
    'queue_directory = spool',
    'data_directory = data',
    'address_verify_map =',
    `smtpd_banner = $myhostname ESMTP ${banner}`,
    'smtpd_recipient_restrictions = reject_unauth_destination',
  ].join('\n') + '\n';
  const dir = makeConfigDir({ 'main.cf': mainCf('first'), 'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n` });
  const server = await startServer(dir, port);
  try {
    const pidFile = join(dir, 'spool', 'pid', 'master.pid');
    assert.equal(readFileSync(pidFile, 'utf8').trim(), String(server.child.pid));
    assert.equal(statSync(join(dir, 'spool')).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'data')).mode & 0o777, 0o700);
    await server.waitForLog(/backstop\/master\[\d+\]: daemon started/);

    // A second master on the same configuration is refused.
    const second = await runCli(['start', '-c', dir]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /fatal: the Backstop mail system is already running \(pid \d+\)/);

    let s = await talk(port);
    assert.equal(s.greeting, '220 mx2.backup.test ESMTP first');
    // A session open across the reload keeps working.
    const held = s;

    writeFileSync(join(dir, 'main.cf'), mainCf('second') + 'smtpd_timeout = soon\n');
    const r1 = await runCli(['reload', '-c', dir]);
    assert.equal(r1.code, 0, r1.stderr);
    await server.waitForLog(/error: .*main\.cf, line 9: parameter smtpd_timeout: bad value "soon"/);
    await server.waitForLog(/reload refused: configuration errors; the running configuration stays in force/);
    s = await talk(port);
    assert.equal(s.greeting, '220 mx2.backup.test ESMTP first');
    s.close();

    writeFileSync(join(dir, 'main.cf'), mainCf('second'));
    await runCli(['reload', '-c', dir]);
    await server.waitForLog(/backstop\/master\[\d+\]: reload -- version/);
    s = await talk(port);
    assert.equal(s.greeting, '220 mx2.backup.test ESMTP second');
    s.close();
    assert.match(await held.cmd('EHLO client.test'), /^250-mx2\.backup\.test/);
    assert.match(await held.cmd('QUIT'), /^221/);
    held.close();

    const stop = await runCli(['stop', '-c', dir]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stderr, /stopping the Backstop mail system/);
    assert.equal(await server.stop(), 0);
    assert.equal(existsSync(pidFile), false);
    await server.waitForLog(/terminating on signal 15/);
    const notRunning = await runCli(['stop', '-c', dir]);
    assert.equal(notRunning.code, 1);
    assert.match(notRunning.stderr, /not running/);
  } finally {
    await server.stop();
    server.cleanup();
  }
});
