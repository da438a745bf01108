// The destination watch's pace and its probe of several next hops at once: the interval arithmetic
// (one second, jitter, slower only after hours of absence) and, against real loopback peers, the
// first address to greet wins even when an earlier one swallows the connection and never answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { probeGreeting, watchDelay, firstToAnswer, WATCH_MAX_INTERVAL_MS } from '../../src/qmgr/index.js';
import { startSink } from '../helpers/sink.js';
import { freePort } from '../helpers/net.js';

const HOUR = 3_600_000;

test('watch pace: the interval with ±10% jitter for the first hour, then doubling per hour up to a minute', () => {
  assert.equal(watchDelay(1000, 0, 0.5), 1000);
  assert.equal(watchDelay(1000, 0, 0), 900);
  assert.equal(watchDelay(1000, 0, 0.999999), 1000 * (0.9 + 0.2 * 0.999999));
  assert.equal(watchDelay(1000, 59 * 60_000, 0.5), 1000, 'still one second after 59 minutes');
  assert.equal(watchDelay(1000, HOUR, 0.5), 2000, 'two seconds in the second hour');
  assert.equal(watchDelay(1000, 3 * HOUR, 0.5), 8000);
  assert.equal(watchDelay(1000, 48 * HOUR, 0.5), WATCH_MAX_INTERVAL_MS, 'never more than a minute');
  assert.equal(watchDelay(120_000, 5 * HOUR, 0.5), 120_000, 'never below the configured interval');
  assert.equal(watchDelay(1000, -5000, 0.5), 1000, 'a clock step backwards is no outage');
});

test('watch probe: every next hop at once — a silent first address does not delay the one that greets', async () => {
  // 127.0.0.2 accepts the connection and never says a word (a hung primary); 127.0.0.4 greets.
  const held: Socket[] = [];
  const silent = createServer((s) => held.push(s));
  const silentPort = await freePort('127.0.0.2');
  await new Promise<void>((r) => silent.listen(silentPort, '127.0.0.2', r));
  const sinkPort = await freePort('127.0.0.4');
  const sink = await startSink({ host: '127.0.0.4', port: sinkPort });
  try {
    const hops = [
      { ip: '127.0.0.2', port: silentPort },
      { ip: '127.0.0.4', port: sinkPort },
    ];
    const t0 = Date.now();
    const up = await firstToAnswer(hops, (a) => probeGreeting(a, 5000));
    const took = Date.now() - t0;
    assert.deepEqual(up, hops[1]);
    assert.ok(took < 2500, `the greeting address answered after ${took} ms, not after the silent one's 5 s timeout`);
    assert.equal(held.length, 1, 'the silent address was probed too, at the same time');

    // Nobody answers: undefined once every probe has failed (refused at once, silent at its timeout).
    const refusedPort = await freePort('127.0.0.5');
    const none = await firstToAnswer([{ ip: '127.0.0.5', port: refusedPort }, hops[0]], (a) => probeGreeting(a, 300));
    assert.equal(none, undefined);
    assert.equal(await firstToAnswer([], (a: { ip: string; port: number }) => probeGreeting(a, 300)), undefined);
  } finally {
    for (const s of held) s.destroy();
    await new Promise((r) => silent.close(r));
    await sink.close();
  }
});
