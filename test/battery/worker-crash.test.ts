// Reliability of the process model under load: kill -9 of one smtpd worker, of the queue
// manager worker, and of the whole process tree (master and workers at once), while clients
// submit mail and the primary is up. Every message that got 250 must reach the primary; the
// master replaces a killed worker and the server keeps answering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { children, roleOf } from '../helpers/processes.js';
import { rmSync } from 'node:fs';
import { startDnsServer } from '../helpers/dnsserver.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { freePort, sleep } from '../helpers/net.js';
import { mainCf, makeConfigDir, sendOne, startBackstop, tokenOf, worldZone, type Backstop } from './harness.js';



test('kill -9 of an smtpd worker, the queue manager and the whole tree under load: nothing that got 250 is lost', { timeout: 180_000 }, async (t) => {
  const dns = await startDnsServer(worldZone());
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort, ['backstop_smtpd_workers = 2']),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const sink: Sink = await startSink({ host: '127.0.0.2', port: primaryPort });
  const accepted = new Set<number>();
  let server: Backstop | undefined;
  let next = 0;
  let running = true;
  const senders = () =>
    Array.from({ length: 4 }, async () => {
      while (running) {
        const n = next++;
        const r = await sendOne(port, 'someone@sender.test', ['alice@primary.test'], `X-Token: ${n}\nSubject: worker crash\n\nmessage ${n}\n`, 5000);
        if (r.accepted) accepted.add(n);
        else if (r.code === 0) await sleep(20);
      }
    });
  try {
    server = await startBackstop(dir, port);
    const master = server.child.pid!;
    for (const role of ['smtpd', 'qmgr'] as const) {
      running = true;
      const load = Promise.all(senders());
      await sleep(700);
      const victim = children(master).find((p) => roleOf(p) === role);
      assert.ok(victim, `a ${role} worker`);
      process.kill(victim, 'SIGKILL');
      await server.waitForLog(new RegExp(`warning: process ${role} pid ${victim} killed by signal 9`));
      await sleep(1500);
      running = false;
      await load;
      assert.equal(server.child.exitCode, null, 'the master is still running');
      assert.ok(children(master).some((p) => roleOf(p) === role && p !== victim), `the ${role} worker was replaced`);
      t.diagnostic(`${role} killed: accepted so far ${accepted.size}`);
    }
    // The whole tree at once: the master and its workers.
    running = true;
    const load = Promise.all(senders());
    await sleep(700);
    const tree = [master, ...children(master)];
    for (const pid of tree) process.kill(pid, 'SIGKILL');
    assert.equal(await server.exited, 'SIGKILL');
    running = false;
    await load;
    // Started again, the new queue manager recovers what the killed one had not delivered.
    server = await startBackstop(dir, port);
    const seen = () => new Set(sink.messages.map((m) => tokenOf(m.raw)));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && [...accepted].some((n) => !seen().has(n))) await sleep(200);
    const lost = [...accepted].filter((n) => !seen().has(n));
    const duplicates = sink.messages.length - seen().size;
    t.diagnostic(`accepted(250)=${accepted.size} delivered=${sink.messages.length} lost=${lost.length} duplicates=${duplicates}`);
    console.log(`battery worker-crash: accepted=${accepted.size} lost=${lost.length} duplicates=${duplicates}`);
    assert.ok(accepted.size > 0, 'no message was accepted at all');
    assert.deepEqual(lost, [], `messages that got 250 and never arrived: ${lost.join(', ')}`);
  } finally {
    running = false;
    await server?.stop('SIGKILL');
    await sink.close();
    await dns.close();
    // Workers orphaned by the SIGKILL above exit on their own within 5 s; until then they may
    // still remove their spare files in incoming/.
    rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
});
