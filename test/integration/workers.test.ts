// The process model through the real `backstop start` (backstop_smtpd_workers = 2): a master, one
// queue manager and two smtpd workers; when started as root, only the master keeps root and the
// workers run as mail_owner (a user this test creates), owning the queue. Mail accepted by any
// worker reaches the primary through the one queue manager; a worker killed with SIGKILL is
// replaced while the server keeps answering; a reload under load loses nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { children, uidOf } from '../helpers/processes.js';
import { chmodSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { submit } from '../helpers/smtp-client.js';
import { freePort } from '../helpers/net.js';
import { relayConfigDir, startServer } from '../helpers/server.js';
import { startSink } from '../helpers/sink.js';
import { runCli } from '../helpers/cli.js';

const TEST_USER = 'backstop-test';
const isRoot = process.getuid?.() === 0;

/** A system user for mail_owner (created once; left for the next run). */
function ensureTestUser(): { uid: number } {
  try {
    return { uid: Number(execFileSync('id', ['-u', TEST_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()) };
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER]);
    return { uid: Number(execFileSync('id', ['-u', TEST_USER], { encoding: 'utf8' }).trim()) };
  }
}



const send = (port: number, rcpt: string) => submit(port, rcpt);

async function until(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('smtpd workers and one queue manager: privileges, delivery, a killed worker, reload under load', { timeout: 120_000 }, async () => {
  const owner = isRoot ? ensureTestUser() : undefined;
  const sink = await startSink({ host: '127.0.0.2' });
  const port = await freePort();
  const dir = relayConfigDir(port, sink.port, { extra: [
      `mail_owner = ${TEST_USER}`,
    ] });
  // mail_owner must be able to read the configuration, as with Postfix's /etc/postfix.
  chmodSync(dir, 0o755);
  const server = await startServer(dir, port);
  try {
    // The process tree: a master, a queue manager and two smtpd workers.
    const master = server.child.pid!;
    await until('three workers', () => children(master).length === 3);
    const workers = children(master);
    if (owner) {
      assert.equal(uidOf(master), 0, 'the master keeps root');
      // Each worker changes to mail_owner once initialized, before it serves anything.
      await until('workers as mail_owner', () => workers.every((pid) => uidOf(pid) === owner.uid));
      const spool = statSync(join(dir, 'spool'));
      assert.equal(spool.uid, owner.uid, 'the queue belongs to mail_owner');
      assert.equal(spool.mode & 0o777, 0o700);
      for (const q of ['active', 'deferred', 'incoming']) assert.equal(statSync(join(dir, 'spool', q)).uid, owner.uid);
    } else {
      assert.match(server.log(), /not started as root: every process runs as user /);
    }

    // Mail taken in by the workers reaches the primary; one queue manager delivers it all.
    const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => send(port, `u${i}@relay.test`)));
    await until('8 deliveries', () => sink.messages.length === 8);
    for (const id of ids) await server.waitForLog(new RegExp(`backstop/smtp\\[\\d+\\]: ${id}: to=<.*status=sent`));
    const smtpdPids = new Set([...server.log().matchAll(/backstop\/smtpd\[(\d+)\]: connect from/g)].map((m) => m[1]));
    const qmgrPids = new Set([...server.log().matchAll(/backstop\/qmgr\[(\d+)\]:/g)].map((m) => m[1]));
    assert.equal(qmgrPids.size, 1, 'one queue manager');
    assert.ok(!smtpdPids.has(String(master)), 'the master runs no SMTP session');

    // A worker killed with SIGKILL is replaced; the server keeps answering.
    const qmgrPid = Number([...qmgrPids][0]);
    const victim = workers.find((p) => p !== qmgrPid)!;
    process.kill(victim, 'SIGKILL');
    await server.waitForLog(new RegExp(`warning: process smtpd pid ${victim} killed by signal 9`));
    await until('a replacement worker', () => children(master).length === 3 && !children(master).includes(victim));
    await send(port, 'after-kill@relay.test');
    await until('delivery after the kill', () => sink.messages.length === 9);

    // Reload under load: every message answered 250 is delivered, none refused.
    const load = Array.from({ length: 20 }, (_, i) => new Promise((r) => setTimeout(r, i * 20)).then(() => send(port, `reload${i}@relay.test`)));
    const reload = await runCli(['reload', '-c', dir]);
    assert.equal(reload.code, 0, reload.stderr);
    const accepted = await Promise.all(load);
    assert.equal(accepted.length, 20);
    await until('all 29 deliveries', () => sink.messages.length === 29, 30_000);
    assert.equal(new Set(sink.messages.map((m) => m.to[0])).size, 29, 'no message twice');
    assert.deepEqual(readdirSync(join(dir, 'spool', 'incoming')), [], 'nothing half-written is left');
  } finally {
    await server.stop();
    await sink.close();
    server.cleanup();
  }
});
