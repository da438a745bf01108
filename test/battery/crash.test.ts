// Reliability: kill -9 of the real `backstop start` process at random moments while clients
// submit mail and the queue manager delivers (the primary sink is up part of each round). After
// the last round the server runs with the primary up: every message that got 250 must reach the
// primary. Lost must be 0; duplicates (deliveries in flight at the kill) are counted and printed.
// BATTERY_ROUNDS (default 3) and BATTERY_SEED pick the run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer } from '../helpers/dnsserver.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { freePort, sleep } from '../helpers/net.js';
import { envInt, mainCf, makeConfigDir, rng, sendOne, startBackstop, worldZone, type Backstop } from './harness.js';
import { rmSync } from 'node:fs';

function tokenOf(raw: Buffer): number {
  const m = /^X-Token: (\d+)\r$/m.exec(raw.toString('latin1'));
  return m ? Number(m[1]) : -1;
}

test('kill -9 at random moments under load: nothing that got 250 is lost', { timeout: 200_000 }, async (t) => {
  const rounds = envInt('BATTERY_ROUNDS', 3);
  const seed = envInt('BATTERY_SEED', 1);
  const rand = rng(seed);
  const dns = await startDnsServer(worldZone());
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const accepted = new Set<number>();
  const delivered: Sink['messages'] = [];
  let sink: Sink | undefined;
  let server: Backstop | undefined;
  let next = 0;
  let attempts = 0;
  const closeSink = async () => {
    if (!sink) return;
    delivered.push(...sink.messages);
    const s = sink;
    sink = undefined;
    await s.close();
  };
  try {
    for (let round = 0; round < rounds; round++) {
      server = await startBackstop(dir, port);
      let running = true;
      const senders = Array.from({ length: 4 }, async () => {
        while (running) {
          const n = next++;
          attempts++;
          const r = await sendOne(port, 'someone@sender.test', ['alice@primary.test'], `X-Token: ${n}\nSubject: crash round ${round}\n\nmessage ${n}\n`, 5000);
          if (r.accepted) accepted.add(n);
          else if (r.code === 0) await sleep(20);
        }
      });
      // The primary comes up at a random moment within the round and stays until the kill.
      const killAt = 400 + Math.floor(rand() * 1600);
      const upAt = Math.floor(rand() * killAt);
      await sleep(upAt);
      sink = await startSink({ host: '127.0.0.2', port: primaryPort });
      await sleep(killAt - upAt);
      server.child.kill('SIGKILL');
      assert.equal(await server.exited, 'SIGKILL');
      running = false;
      await Promise.all(senders);
      await closeSink();
      t.diagnostic(`round ${round + 1}: killed after ${killAt} ms (primary up from ${upAt} ms); accepted so far ${accepted.size}`);
    }
    // Final run: the primary stays up until everything that got 250 has arrived.
    server = await startBackstop(dir, port);
    sink = await startSink({ host: '127.0.0.2', port: primaryPort });
    const deadline = Date.now() + 60_000;
    const seen = () => new Set([...delivered, ...sink!.messages].map((m) => tokenOf(m.raw)));
    while (Date.now() < deadline && [...accepted].some((n) => !seen().has(n))) await sleep(200);
    await sleep(500);
    await server.stop();
    await closeSink();
    const counts = new Map<number, number>();
    for (const m of delivered) counts.set(tokenOf(m.raw), (counts.get(tokenOf(m.raw)) ?? 0) + 1);
    const lost = [...accepted].filter((n) => !counts.has(n));
    const duplicates = [...counts.values()].reduce((s, c) => s + (c > 1 ? c - 1 : 0), 0);
    const unacked = [...counts.keys()].filter((n) => !accepted.has(n)).length;
    t.diagnostic(`rounds=${rounds} seed=${seed} attempts=${attempts} accepted(250)=${accepted.size} delivered=${delivered.length} lost=${lost.length} duplicates=${duplicates} delivered-without-250=${unacked}`);
    console.log(`battery crash: rounds=${rounds} accepted=${accepted.size} lost=${lost.length} duplicates=${duplicates} delivered-without-250=${unacked}`);
    assert.ok(accepted.size > 0, 'no message was accepted at all');
    assert.deepEqual(lost, [], `messages that got 250 and never arrived: ${lost.join(', ')}`);
    assert.ok(!counts.has(-1), 'a delivered message lost its X-Token header');
    // Queue files are recycled (docs/queue-format.md): every delivered message is whole and its
    // own, never a mix with the message that had the file before.
    const mixed = delivered.filter((m) => !m.raw.toString('latin1').includes(`\r\n\r\nmessage ${tokenOf(m.raw)}\r\n`));
    assert.deepEqual(mixed.map((m) => tokenOf(m.raw)), [], 'delivered messages whose body is not their own');
  } finally {
    await server?.stop('SIGKILL');
    await closeSink();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
