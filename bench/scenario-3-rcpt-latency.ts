// Scenario 3 (issue 7): RCPT latency. Cached: while smtp-source loads the server (20 sessions),
// our latency client (bench/harness/smtpclient.ts) times RCPT TO:<user@primary.test> (a verify
// cache hit) on its own connection: MAIL, RCPT (timed), RSET, 40 per connection (below Postfix's
// junk-command limit of 100), then a new connection. Uncached: a recipient never seen before,
// primary up (Postfix: ~3 s, its address_verify_poll_delay; Backstop: the probe's round trip).
// Target: cached p99 under 2 ms.
// Run: npx tsx bench/scenario-3-rcpt-latency.ts [--messages 1000] [--runs 3] [--sessions 20]
import { startLab, parseArgs, stat, emitReport, settled, RCPT, type BenchRow, type Server } from './harness/lab.js';
import { runSmtpSource, smtpSourceArgs } from './harness/postfix.js';
import { smtpSession, percentile } from './harness/smtpclient.js';

const args = parseArgs({ messages: 1000, runs: 3, sessions: [20] });
const UNCACHED = 3;
const t0 = Date.now();
const lab = await startLab({ servers: args.servers });
const notes: string[] = [];

async function rcptLoop(port: number, until: () => boolean, maxSamples = 20_000): Promise<number[]> {
  const out: number[] = [];
  while (!until() && out.length < maxSamples) {
    const s = await smtpSession({ host: '127.0.0.1', port });
    try {
      await s.command('EHLO latency.client.test');
      for (let i = 0; i < 40 && !until() && out.length < maxSamples; i++) {
        await s.command('MAIL FROM:<sender@client.test>');
        const r = await s.command(`RCPT TO:<${RCPT}>`);
        if (r.code !== 250) throw new Error(`RCPT ${RCPT}: ${r.text}`);
        out.push(r.ms);
        await s.command('RSET');
      }
    } finally { await s.quit(); }
  }
  return out;
}

try {
  const sessions = args.sessions[0];
  await lab.primaryUp();
  const figs = new Map<string, number[]>();
  const errors = new Map<string, string>();
  const push = (k: string, v: number) => figs.set(k, [...(figs.get(k) ?? []), v]);
  for (let run = 0; run < args.runs; run++) {
    for (const s of lab.servers) {
      if (errors.has(s.kind)) continue;
      try {
        await settled(s, 30_000);
        const quietEnd = Date.now() + 15_000; // 200 samples or 15 s, whichever comes first
        const quiet = await rcptLoop(s.port, () => Date.now() > quietEnd, 200);
        push(`${s.kind}/idle-p50`, percentile(quiet, 50));
        push(`${s.kind}/idle-p99`, percentile(quiet, 99));
        let done = false;
        const load = runSmtpSource({ host: '127.0.0.1', port: s.port, sessions, messages: args.messages, size: 1024 }).finally(() => { done = true; });
        const lat = await rcptLoop(s.port, () => done);
        await load;
        push(`${s.kind}/p50`, percentile(lat, 50));
        push(`${s.kind}/p99`, percentile(lat, 99));
        const un: number[] = [];
        for (let i = 0; i < UNCACHED; i++) {
          const c = await smtpSession({ host: '127.0.0.1', port: s.port });
          await c.command('EHLO latency.client.test');
          await c.command('MAIL FROM:<sender@client.test>');
          const r = await c.command(`RCPT TO:<new-${Date.now().toString(36)}-${run}-${i}@primary.test>`, 30_000);
          await c.quit();
          if (r.code !== 250) throw new Error(`uncached RCPT: ${r.text}`);
          un.push(r.ms);
        }
        push(`${s.kind}/uncached`, percentile(un, 50));
        console.error(`run ${run + 1}: ${s.kind}: cached p50 ${percentile(lat, 50).toFixed(2)} ms p99 ${percentile(lat, 99).toFixed(2)} ms (${lat.length} samples); uncached ${un.map((x) => x.toFixed(0)).join(', ')} ms`);
      } catch (e) {
        errors.set(s.kind, (e as Error).message.split('\n')[0].slice(0, 200));
        console.error(`run ${run + 1}: ${s.kind}: ${(e as Error).message}`);
      }
    }
  }
  const src = `smtp-source ${smtpSourceArgs({ host: '127.0.0.1', port: 2525, sessions, messages: args.messages, size: 1024 }).join(' ')}`;
  const cmd = `npx tsx bench/scenario-3-rcpt-latency.ts --sessions ${sessions} --messages ${args.messages} --runs ${args.runs}   # load: ${src}`;
  const note = (kind: 'postfix' | 'backstop') => errors.get(kind) ?? (kind === 'backstop' && !lab.servers.some((x: Server) => x.kind === 'backstop') ? (lab.backstopError ?? 'not selected') : undefined);
  const row = (c: string, metric: string, m: string, target?: string): BenchRow =>
    ({ case: c, metric, better: 'lower', backstop: stat(figs.get(`backstop/${m}`) ?? []), postfix: stat(figs.get(`postfix/${m}`) ?? []), backstopNote: note('backstop'), postfixNote: note('postfix'), command: cmd, target });
  const rows = [
    row('cached recipient, no other load', 'RCPT p50 ms', 'idle-p50'),
    row('cached recipient, no other load', 'RCPT p99 ms', 'idle-p99'),
    row(`cached recipient, under ${sessions}-session load`, 'RCPT p50 ms', 'p50'),
    row(`cached recipient, under ${sessions}-session load`, 'RCPT p99 ms', 'p99', 'p99 < 2 ms'),
    row('uncached recipient, primary up, no load', 'RCPT ms (median of 3)', 'uncached'),
  ];
  notes.push(`Latency = write of "RCPT TO" to the complete reply, on loopback, from a Node client on the same 2-core machine as the load (so it includes the client's own scheduling delay).`);
  emitReport({ bench: 'scenario-3-rcpt-latency', title: 'Scenario 3: RCPT latency', rows, notes, seconds: (Date.now() - t0) / 1000 });
} finally {
  await lab.close();
}
