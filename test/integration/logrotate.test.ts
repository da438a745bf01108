// maillog_file rotation through the real server with workers: `backstop logrotate` renames the
// file with the date suffix and every process reopens it, and an outside rotation (mv, then
// SIGUSR1, as logrotate(8) does) works the same way. Mail keeps flowing meanwhile, and no line is
// lost: every message's lines are in the old file or the new one, and the new one has lines from
// the workers (they reopened too). Also `backstop status` with the HTTP listener turned off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { submit } from '../helpers/smtp-client.js';
import { freePort, sleep, waitFor } from '../helpers/net.js';
import { makeConfigDir, relayConfigDir, startServer } from '../helpers/server.js';
import { startSink } from '../helpers/sink.js';
import { runCli } from '../helpers/cli.js';

const send = (port: number, rcpt: string) => submit(port, rcpt);

test('logrotate and SIGUSR1 reopen maillog_file in every process without losing a line', { timeout: 120_000 }, async () => {
  const sink = await startSink({ host: '127.0.0.2' });
  const port = await freePort();
  const dir = relayConfigDir(port, sink.port, { extra: [
      'mail_owner = nobody',
      'maillog_file = log/maillog',
      'backstop_http_listen =',
    ] });
  const log = join(dir, 'log', 'maillog');
  const server = await startServer(dir, port);
  try {
    // Mail flows while the log is rotated twice.
    const ids: string[] = [];
    let stop = false;
    const stream = (async () => {
      for (let i = 0; i < 200 && !stop; i++) {
        ids.push(await send(port, `u${i}@relay.test`));
        await sleep(20);
      }
    })();
    await waitFor(() => ids.length >= 3, 20_000, 'some mail');
    const r = await runCli(['logrotate', '-c', dir]);
    assert.equal(r.code, 0, r.stderr);
    const rotated = readdirSync(join(dir, 'log')).filter((n) => /^maillog\.\d{8}-\d{6}$/.test(n));
    assert.equal(rotated.length, 1, readdirSync(join(dir, 'log')).join(' '));
    const workersWrite = () => existsSync(log) && /backstop\/smtpd\[\d+\]: connect from[\s\S]*backstop\/qmgr\[\d+\]: /.test(readFileSync(log, 'utf8'));
    await waitFor(workersWrite, 20_000, 'the workers writing to the new maillog');
    // An outside rotation: mv, then SIGUSR1.
    renameSync(log, `${log}.outside`);
    process.kill(server.child.pid!, 'SIGUSR1');
    await waitFor(workersWrite, 20_000, 'the workers writing to the reopened maillog');
    stop = true;
    await stream;
    await sink.waitFor(ids.length, 30_000);
    await sleep(500);
    const files = [join(dir, 'log', rotated[0]), `${log}.outside`, log].map((f) => readFileSync(f, 'utf8'));
    const all = files.join('');
    for (const id of ids) {
      assert.match(all, new RegExp(`backstop/smtpd\\[\\d+\\]: ${id}: client=`), `${id}: smtpd line`);
      assert.match(all, new RegExp(`backstop/smtp\\[\\d+\\]: ${id}: to=<.*status=sent`), `${id}: delivery line`);
      assert.match(all, new RegExp(`backstop/qmgr\\[\\d+\\]: ${id}: removed`), `${id}: removed line`);
    }
    // Every file holds whole lines only, and the last one has the workers' lines after the reopen.
    for (const f of files) assert.ok(f.endsWith('\n') && !/\n[^\n]*\x00/.test(f));
    assert.match(files[2], /backstop\/smtpd\[\d+\]: connect from/);
    assert.match(files[2], /backstop\/qmgr\[\d+\]: /);

    // The HTTP listener is off: status knows the master runs, and says why it has no details.
    const st = await runCli(['status', '-c', dir]);
    assert.equal(st.code, 0);
    assert.match(st.stdout, new RegExp(`master pid ${server.child.pid} runs; no details: backstop_http_listen is empty`));
  } catch (err) {
    for (const f of readdirSync(join(dir, 'log'))) console.error(`== ${f}\n${readFileSync(join(dir, 'log', f), 'utf8').slice(-3000)}`);
    console.error(server.log());
    throw err;
  } finally {
    await server.stop();
    await sink.close();
    server.cleanup();
  }
});

test('logrotate without maillog_file or without a running master: one line, exit 1', async () => {
  const dir = makeConfigDir({ 'main.cf': 'queue_directory = spool\ndata_directory = data\n' });
  let dir2 = '';
  try {
    const r = await runCli(['logrotate', '-c', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^backstop: fatal: logrotate: maillog_file is not set/);
    dir2 = makeConfigDir({ 'main.cf': 'queue_directory = spool\ndata_directory = data\nmaillog_file = maillog\n' });
    const r2 = await runCli(['logrotate', '-c', dir2]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /not running/);
    const st = await runCli(['status', '-c', dir2]);
    assert.equal(st.code, 1);
    assert.equal(st.stderr, 'backstop status: the Backstop mail system is not running (no live master pid file)\n');
    assert.equal((await runCli(['status', '--bogus', '-c', dir2])).code, 2);
    const help = await runCli(['status', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (dir2) rmSync(dir2, { recursive: true, force: true });
  }
});
