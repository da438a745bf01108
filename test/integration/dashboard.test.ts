// The dashboard in a real browser: Debian's headless Chromium driven by playwright-core (no
// browser download). The real server (two smtpd workers and a queue manager) holds a deferred
// message for a primary that is down; the page shows it with its last error; an action without
// the token is refused and changes nothing; with the token, a second message is held, released
// and deleted, and "Flush" delivers the first to the primary (back by then); the page follows each
// change by itself, without a reload.
// BACKSTOP_DASHBOARD_SCREENSHOT=FILE keeps a screenshot of the page (docs/dashboard.png).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { submit } from '../helpers/smtp-client.js';
import { freePort } from '../helpers/net.js';
import { relayConfigDir, startServer } from '../helpers/server.js';
import { startSink } from '../helpers/sink.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const TOKEN = 'dashboard-test-token-4f9c';

const send = (port: number, rcpt: string) => submit(port, rcpt, { sender: 'alice@sender.test', subject: 'hello' });

test('the dashboard shows deferred mail, refuses an action without the token, holds, releases, deletes and flushes with it', { skip: !CHROMIUM && 'Debian package chromium is not installed', timeout: 150_000 }, async () => {
  const port = await freePort();
  const httpPort = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = relayConfigDir(port, primaryPort, { extra: [
      // The watch must not flush by itself: the page's button does.
      'backstop_destination_probe_interval = 1h',
      'mail_owner = nobody',
      `backstop_http_listen = 127.0.0.1:${httpPort}`,
      'backstop_http_action_token_file = token',
    ], files: { token: `${TOKEN}\n` } });
  const server = await startServer(dir, port);
  let browser: Browser | undefined;
  let sink: Awaited<ReturnType<typeof startSink>> | undefined;
  try {
    await server.waitForLog(new RegExp(`http listening on 127\\.0\\.0\\.1:${httpPort}$`, 'm'));
    const id = await send(port, 'bob@relay.test');
    await server.waitForLog(new RegExp(`${id}: to=<bob@relay.test>.*status=deferred`), 30_000);
    const other = await send(port, 'carol@relay.test');
    await server.waitForLog(new RegExp(`${other}: to=<carol@relay.test>.*status=deferred`), 30_000);

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const external: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(`http://127.0.0.1:${httpPort}/`)) external.push(r.url());
    });
    await page.goto(`http://127.0.0.1:${httpPort}/`);
    const row = page.locator('#messages tr', { hasText: id });
    await row.waitFor({ timeout: 15_000 });
    assert.match(await row.innerText(), /bob@relay\.test/);
    assert.match(await row.innerText(), /connect to .*Connection refused/i);
    const destRow = page.locator('#destinations tr', { hasText: 'relay.test' });
    assert.match(await destRow.innerText(), /unreachable since/);
    assert.match(await destRow.innerText(), /flush on return/);
    if (process.env.BACKSTOP_DASHBOARD_SCREENSHOT) writeFileSync(process.env.BACKSTOP_DASHBOARD_SCREENSHOT, await page.screenshot({ fullPage: true }));

    // No token typed in: the action is refused and the message stays.
    await page.getByRole('button', { name: `Delete ${id}` }).click();
    await page.locator('#notice', { hasText: 'refused' }).waitFor({ timeout: 10_000 });
    assert.match(await page.locator('#notice').innerText(), /Delete .*refused: a valid action token is required/);
    assert.equal(await row.count(), 1);
    assert.ok(existsSync(join(dir, 'spool', 'deferred', id)), 'the message is still queued');

    // The primary is back; with the token, Flush delivers and the page updates by itself.
    sink = await startSink({ host: '127.0.0.2', port: primaryPort });
    const before = await page.locator('body').getAttribute('data-updated');
    await page.getByLabel('Action token').fill(TOKEN);
    await page.getByRole('button', { name: 'Use token' }).click();
    // Hold, release and delete the other message, each seen on the page and on disk.
    const otherRow = page.locator('#messages tr', { hasText: other });
    await page.getByRole('button', { name: `Hold ${other}` }).click();
    const queueCell = (name: string) => otherRow.locator('td:nth-child(2)', { hasText: new RegExp(`^${name}$`) });
    await queueCell('hold').waitFor({ timeout: 15_000 });
    assert.ok(existsSync(join(dir, 'spool', 'hold', other)));
    await page.getByRole('button', { name: `Release ${other}` }).click();
    await queueCell('deferred').waitFor({ timeout: 15_000 });
    await page.getByRole('button', { name: `Delete ${other}` }).click();
    await otherRow.waitFor({ state: 'detached', timeout: 15_000 });
    assert.ok(!existsSync(join(dir, 'spool', 'deferred', other)), 'deleted');
    await page.getByRole('button', { name: 'Flush relay.test' }).click();
    await sink.waitFor(1, 30_000);
    assert.equal(sink.messages.length, 1);
    assert.equal(sink.messages[0].to[0], 'bob@relay.test');
    await page.locator('#messages', { hasText: 'No queued mail.' }).waitFor({ timeout: 15_000 });
    await page.locator('#destinations tr', { hasText: /relay\.test\s*reachable since/ }).waitFor({ timeout: 15_000 });
    assert.notEqual(await page.locator('body').getAttribute('data-updated'), before, 'the data was refreshed');
    assert.deepEqual(external, [], 'no request leaves the server (no CDN, no fonts)');
  } finally {
    await browser?.close();
    await server.stop();
    await sink?.close();
    server.cleanup();
  }
});
