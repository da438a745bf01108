// Reliability: the primary flaps (up and down every 1–2 s, each "down" closing open sessions)
// while the queue drains. Every accepted message must arrive; duplicates (a 250 from the primary
// lost when its session is cut) are counted and printed. BATTERY_MESSAGES (default 500; 5,000
// by hand) and BATTERY_SEED pick the run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startDnsServer } from '../helpers/dnsserver.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { freePort, sleep } from '../helpers/net.js';
import { envInt, mainCf, makeConfigDir, rng, sendBatch, startBackstop, tokenOf, worldZone } from './harness.js';

test('primary flapping while the queue drains: every message delivered', { timeout: 230_000 }, async (t) => {
  const total = envInt('BATTERY_MESSAGES', 500);
  const rand = rng(envInt('BATTERY_SEED', 1));
  const dns = await startDnsServer(worldZone());
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort, ['smtp_connect_timeout = 2s']),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const server = await startBackstop(dir, port);
  const delivered: Sink['messages'] = [];
  let sink: Sink | undefined;
  let flapping = true;
  let ups = 0;
  const started = Date.now();
  const flapper = (async () => {
    while (flapping) {
      sink = await startSink({ host: '127.0.0.2', port: primaryPort });
      ups++;
      await sleep(1000 + rand() * 1000);
      const s = sink;
      sink = undefined;
      delivered.push(...s.messages);
      await s.close();
      if (!flapping) break;
      await sleep(1000 + rand() * 1000);
    }
  })();
  try {
    // Submit while the primary flaps: 8 connections, batches of 25 messages each.
    const accepted = new Set<number>();
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < total) {
        const batch: number[] = [];
        while (batch.length < 25 && next < total) batch.push(next++);
        const res = await sendBatch(port, batch.map((n) => ({ from: 'someone@sender.test', to: ['alice@primary.test'], body: `X-Token: ${n}\nSubject: flap\n\nmessage ${n}\n` })));
        res.forEach((r, i) => { if (r.accepted) accepted.add(batch[i]); else throw new Error(`message ${batch[i]}: ${r.reply}`); });
      }
    }));
    const submitted = Date.now();
    const seen = () => new Set([...delivered, ...(sink?.messages ?? [])].map((m) => tokenOf(m.raw)));
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline && seen().size < accepted.size) await sleep(250);
    flapping = false;
    await flapper;
    const counts = new Map<number, number>();
    for (const m of delivered) counts.set(tokenOf(m.raw), (counts.get(tokenOf(m.raw)) ?? 0) + 1);
    const lost = [...accepted].filter((n) => !counts.has(n));
    const duplicates = [...counts.values()].reduce((s, c) => s + c - 1, 0);
    const line = `messages=${total} accepted=${accepted.size} delivered=${delivered.length} lost=${lost.length} duplicates=${duplicates} primary-up-periods=${ups} submit=${submitted - started} ms drain-done=${Date.now() - started} ms`;
    t.diagnostic(line);
    console.log(`battery flapping: ${line}`);
    assert.equal(accepted.size, total);
    assert.deepEqual(lost, [], `lost: ${lost.slice(0, 20).join(', ')}`);
  } finally {
    flapping = false;
    await flapper;
    await server.stop();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
