// Verify service benchmarks (run: npx tsx bench/verify-check.ts):
//  1. cache-hit check() per second in-process with the LMDB store (target ≥ 200,000/s);
//  2. first check of an uncached recipient with the primary up on loopback — real DNS server,
//     real SMTP probe, SMTP sink on 127.0.0.2 — p50/p99 (target p50 < 100 ms; Postfix 3.7: ~3 s);
//  3. 10,000 distinct uncached recipients at once against a primary whose RCPT answer takes
//     50 ms: total time, and the largest number of probes the primary saw at once (must stay at or
//     under backstop_verify_probe_concurrency).
// Optional: BENCH_STORM=N changes the storm size.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { Maillog } from '../src/log/index.js';
import { Resolver } from '../src/dns/index.js';
import { probe, ConnectionCache } from '../src/smtp/index.js';
import { createVerifier, openVerifyStore, formatRecord, STAT_OK, type Prober } from '../src/verify/index.js';
import { startDnsServer } from '../test/helpers/dnsserver.js';

const quiet = new Maillog();
quiet.open(undefined, { quiet: true });
const log = quiet.logger('verify');

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * A primary on 127.0.0.2 that greets at once (as Postfix does; smtp-server holds its greeting
 * back 100 ms to catch early talkers, which would measure the sink, not the probe), knows
 * s…/u…@primary.test and answers RCPT after `rcptDelayMs`. Minimal SMTP: no extensions.
 */
async function primary(rcptDelayMs: number) {
  const state = { inRcpt: 0, peakRcpt: 0, rcpts: 0, connections: 0, open: 0, peakOpen: 0 };
  const server = net.createServer((sock) => {
    state.connections++;
    state.peakOpen = Math.max(state.peakOpen, ++state.open);
    sock.setNoDelay(true);
    sock.on('close', () => state.open--);
    sock.on('error', () => {});
    let buf = '';
    let busy = Promise.resolve();
    sock.write('220 mx1.primary.test ESMTP\r\n');
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        busy = busy.then(() => answer(line));
      }
    });
    const answer = async (line: string): Promise<void> => {
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO' || verb === 'HELO') sock.write('250 mx1.primary.test\r\n');
      else if (verb === 'MAIL') sock.write('250 2.1.0 Ok\r\n');
      else if (verb === 'RSET') sock.write('250 2.0.0 Ok\r\n');
      else if (verb === 'NOOP') sock.write('250 2.0.0 Ok\r\n');
      else if (verb === 'QUIT') sock.end('221 2.0.0 Bye\r\n');
      else if (verb === 'RCPT') {
        state.rcpts++;
        state.peakRcpt = Math.max(state.peakRcpt, ++state.inRcpt);
        if (rcptDelayMs > 0) await new Promise((r) => setTimeout(r, rcptDelayMs));
        state.inRcpt--;
        const addr = /<([^>]*)>/.exec(line)?.[1] ?? '';
        sock.write(/^[su]\d*@primary\.test$/i.test(addr) ? '250 2.1.5 Ok\r\n' : `550 5.1.1 <${addr}>: Recipient address rejected: User unknown\r\n`);
      } else sock.write('502 5.5.2 Error: command not recognized\r\n');
    };
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.2', r));
  const port = (server.address() as net.AddressInfo).port;
  return { state, port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(tmpdir() + '/backstop-');
  const dns = await startDnsServer({
    'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
    'mx1.primary.test': { A: ['127.0.0.2'] },
    'mx2.backup.test': { A: ['127.0.0.1'] },
  });
  const resolver = new Resolver({ servers: [dns.servers] });
  const makeProber = (port: number, cache?: ConnectionCache): Prober => (address, sender) =>
    probe(address, sender, { dns: resolver, isSelf: (ip) => ip === '127.0.0.1', defaultPort: port, inetProtocols: ['ipv4'], session: { heloName: 'mx2.backup.test' }, cache, logger: quiet.logger('smtp') });
  try {
    // 1. Cache hits.
    {
      const store = await openVerifyStore(`btree:${dir}/verify`);
      const now = Math.floor(Date.now() / 1000);
      const N = 10_000;
      for (let i = 0; i < N; i++) await store.put(`u${i}@primary.test`, formatRecord({ status: STAT_OK, probed: 0, updated: now, text: '250 2.1.5 Ok' }));
      const v = createVerifier({ store, prober: async () => { throw new Error('no probe expected'); }, log, cleanupTimer: false, params: { address_verify_cache_cleanup_interval: 0 } });
      const addrs = Array.from({ length: N }, (_, i) => `u${i}@primary.test`);
      for (let i = 0; i < 50_000; i++) await v.check(addrs[i % N], 'recipient');
      const total = 1_000_000;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < total; i++) {
        const r = await v.check(addrs[i % N], 'recipient');
        if (r.status !== 'deliverable') throw new Error(`unexpected ${r.status}`);
      }
      const sec = Number(process.hrtime.bigint() - t0) / 1e9;
      const rate = total / sec;
      console.log(`cache-hit check() with LMDB (${N} entries):   ${Math.round(rate).toLocaleString('en')}/s    target ≥ 200,000/s  ${rate >= 200_000 ? 'OK' : 'MISSED'}`);
      await v.close();
      await store.close();
    }

    // 2. First check of an uncached recipient, primary up on loopback: a new SMTP session per
    //    probe, and with the connection cache the server uses (smtp_connection_cache_time_limit).
    for (const reuse of [false, true]) {
      const p = await primary(0);
      const store = await openVerifyStore(`btree:${dir}/verify2-${reuse}`);
      const cache = reuse ? new ConnectionCache({ idleSeconds: 2 }) : undefined;
      const v = createVerifier({ store, prober: makeProber(p.port, cache), log, cleanupTimer: false });
      const times: number[] = [];
      for (let i = 0; i < 300; i++) {
        const t0 = performance.now();
        const r = await v.check(`u${i}@primary.test`, 'recipient');
        times.push(performance.now() - t0);
        if (r.status !== 'deliverable') throw new Error(`unexpected ${r.status}: ${r.text}`);
      }
      times.sort((a, b) => a - b);
      const p50 = pct(times, 50);
      const how = reuse ? 'session reused ' : 'new session    ';
      console.log(`first RCPT, uncached, primary up, ${how}: p50 ${p50.toFixed(1)} ms, p99 ${pct(times, 99).toFixed(1)} ms    target p50 < 100 ms (Postfix 3.7: ~3000 ms)  ${p50 < 100 ? 'OK' : 'MISSED'}`);
      await v.close();
      await cache?.closeAll();
      await store.close();
      await p.close();
    }

    // 3. Probe storm.
    {
      const n = Number(process.env.BENCH_STORM ?? 10_000);
      const bound = 20;
      const p = await primary(50);
      const store = await openVerifyStore(`btree:${dir}/verify3`);
      const cache = new ConnectionCache({ idleSeconds: 2 });
      const v = createVerifier({
        store,
        prober: makeProber(p.port, cache),
        log,
        cleanupTimer: false,
        params: { backstop_verify_probe_concurrency: bound, address_verify_pending_request_limit: n },
      });
      const t0 = performance.now();
      const answers = await Promise.all(Array.from({ length: n }, (_, i) => v.check(`s${i}@primary.test`, 'recipient')));
      const answeredMs = performance.now() - t0;
      while (v.stats.pending > 0) await new Promise((r) => setTimeout(r, 20));
      const totalMs = performance.now() - t0;
      const deliverable = answers.filter((a) => a.status === 'deliverable').length;
      const pending = answers.filter((a) => a.status === 'pending').length;
      let cached = 0;
      for (let i = 0; i < n; i++) if ((await store.get(`s${i}@primary.test`))?.startsWith('0:')) cached++;
      console.log(`storm: ${n.toLocaleString('en')} uncached recipients at once, primary answers RCPT in 50 ms, bound ${bound}:`);
      console.log(`  all probes done in ${(totalMs / 1000).toFixed(1)} s (${Math.round(n / (totalMs / 1000))} probes/s; ideal at the bound: ${((n / bound) * 0.05).toFixed(1)} s); ${cached} cached deliverable`);
      console.log(`  smtpd answers: ${deliverable} deliverable within the 6 s poll budget, ${pending} "Address verification in progress" (all answered after ${(answeredMs / 1000).toFixed(1)} s)`);
      console.log(`  peak probes at the primary at once: ${p.state.peakRcpt} (connections at once: ${p.state.peakOpen}, opened: ${p.state.connections})    must be ≤ ${bound}  ${p.state.peakRcpt <= bound ? 'OK' : 'MISSED'}`);
      await v.close();
      await cache.closeAll();
      await store.close();
      await p.close();
    }
  } finally {
    resolver.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
