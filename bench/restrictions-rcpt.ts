// RCPT decision latency of the seed's smtpd_recipient_restrictions / smtpd_relay_restrictions
// (with the relay line activated), in-process, with 50 concurrent sessions: DNS answers cached
// after the first round, verify answering from its cache. Prints p50/p99 beside the target.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config } from '../src/config/index.js';
import { Resolver } from '../src/dns/index.js';
import { Maillog } from '../src/log/index.js';
import { createRestrictionEngine } from '../src/smtpd/check/index.js';
import type { Verifier } from '../src/verify/types.js';
import { startDnsServer } from '../test/helpers/dnsserver.js';
import { seedMainCf, writeSeedTables, SEED_ZONE, startPolicy } from '../test/smtpd/check/seedfixture.js';
import { session } from '../test/smtpd/check/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
writeSeedTables(dir);
const dns = await startDnsServer(SEED_ZONE);
const policy = await startPolicy();
const resolver = new Resolver({ servers: [dns.servers], timeoutMs: 2000 });
const log = new Maillog();
log.open(undefined, { quiet: true });
// verify cache hit: the answers a verify(8) cache would hold.
const cache = new Map([['django@nausch.org', { status: 'deliverable' as const, text: '250 2.1.5 Ok' }]]);
const verifier: Verifier = { check: async (a) => cache.get(a) ?? { status: 'undeliverable', text: 'host said: 550 5.1.1 User unknown' } };
const engine = createRestrictionEngine(Config.fromText(seedMainCf(dir, policy.port, true), dir), {
  dns: resolver, verifier, myAddresses: () => ['127.0.0.1'], log: log.logger('smtpd'),
});

const s = session({ clientName: 'unknown', reverseClientName: 'unknown', helo: 'ich', recipient: 'django@nausch.org', clientAddress: '127.0.0.1' });
const first = await engine.check(s);
if (first.action !== 'accept') throw new Error(`unexpected verdict ${JSON.stringify(first)}`);

const SESSIONS = 50;
const PER_SESSION = 400;

/**
 * Two loads. "paced": each of the 50 sessions waits 1 ms between its RCPTs, as a real client must
 * (it reads our reply, then writes the next command over the network) — this is the latency an
 * SMTP client sees. "saturated": no wait at all, so every decision also waits for the other 49
 * sessions' decisions on the one event loop — a throughput test, shown for the record.
 */
async function run(thinkMs: number): Promise<number[]> {
  const times: number[] = [];
  await Promise.all(Array.from({ length: SESSIONS }, async (_, k) => {
    if (thinkMs) await new Promise((r) => setTimeout(r, (k * thinkMs) / SESSIONS));
    for (let i = 0; i < PER_SESSION; i++) {
      const t0 = process.hrtime.bigint();
      await engine.check(s);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (thinkMs) await new Promise((r) => setTimeout(r, thinkMs));
    }
  }));
  return times.sort((a, b) => a - b);
}

for (const [name, think] of [['paced (1 ms client round trip)', 1], ['saturated (no round trip)', 0]] as const) {
  const times = await run(think);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))];
  console.log(`restrictions-rcpt ${name}: ${times.length} RCPT decisions, ${SESSIONS} concurrent sessions (seed lists, DNS and verify cached)`);
  console.log(`  p50 ${pct(50).toFixed(3)} ms`);
  console.log(`  p99 ${pct(99).toFixed(3)} ms   (target < 2 ms)`);
  console.log(`  max ${times[times.length - 1].toFixed(3)} ms`);
}

await engine.close();
resolver.close();
await policy.close();
await dns.close();
rmSync(dir, { recursive: true, force: true });
