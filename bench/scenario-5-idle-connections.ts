// Scenario 5 (issue 7): N concurrent idle connections (default 2,000), each greeted and then
// silent. Figures: the server's memory with them open (sum of PSS of its processes), the time
// to open and greet all of them, and the time to greet one more (median of 5 extra connections
// made while the N stay open). Postfix needs one smtpd process per connection, so its smtpd
// service gets maxproc N+100 here (the default process limit of 100 would leave the rest
// waiting in the listen queue); both servers have no per-client connection limit.
// Target: Backstop under 300 MB.
// Run: npx tsx bench/scenario-5-idle-connections.ts [--connections 2000] [--runs 1]
import { startLab, parseArgs, stat, emitReport, type BenchRow, type Server } from './harness/lab.js';
import { smtpSession, percentile, type SmtpSession } from './harness/smtpclient.js';
import { sleep } from './harness/proc.js';

const args = parseArgs({ messages: 1, runs: 1 });
const N = args.connections;
const t0 = Date.now();
const lab = await startLab({
  servers: args.servers, warm: false,
  postfixSmtpd: `n - n - ${N + 100} smtpd`,
  params: { smtpd_timeout: '600s' },
});
const notes: string[] = [];

async function openAll(port: number, n: number, parallel = 50): Promise<SmtpSession[]> {
  const out: SmtpSession[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const s = await smtpSession({ host: '127.0.0.1', port, timeoutMs: 120_000 });
      if (!s.greeting.startsWith('220')) throw new Error(`greeting: ${s.greeting}`);
      out.push(s);
    }
  };
  try {
    await Promise.all(Array.from({ length: parallel }, worker));
  } catch (e) {
    for (const s of out) s.destroy();
    throw e;
  }
  return out;
}

try {
  const figs = new Map<string, number[]>();
  const errors = new Map<string, string>();
  const push = (k: string, v: number) => figs.set(k, [...(figs.get(k) ?? []), v]);
  for (let run = 0; run < args.runs; run++) {
    for (const s of lab.servers as Server[]) {
      if (errors.has(s.kind)) continue;
      let conns: SmtpSession[] = [];
      try {
        await sleep(500);
        const before = s.meter.memory();
        const a = performance.now();
        conns = await openAll(s.port, N);
        const openS = (performance.now() - a) / 1000;
        await sleep(1000);
        const mem = s.meter.memory();
        const extra: number[] = [];
        for (let i = 0; i < 5; i++) {
          const c = await smtpSession({ host: '127.0.0.1', port: s.port, timeoutMs: 120_000 });
          extra.push(c.greetingMs);
          await c.quit();
          await sleep(200);
        }
        push(`${s.kind}/mem`, mem.pss / 2 ** 20);
        push(`${s.kind}/rss`, mem.rss / 2 ** 20);
        push(`${s.kind}/idle`, before.pss / 2 ** 20);
        push(`${s.kind}/open`, openS);
        push(`${s.kind}/greet`, percentile(extra, 50));
        console.error(`run ${run + 1}: ${s.kind}: ${N} open in ${openS.toFixed(1)} s; PSS ${(mem.pss / 2 ** 20).toFixed(0)} MB (RSS sum ${(mem.rss / 2 ** 20).toFixed(0)} MB, ${mem.processes} processes; ${(before.pss / 2 ** 20).toFixed(0)} MB before); one more greeted in ${extra.map((x) => x.toFixed(1)).join(', ')} ms`);
      } catch (e) {
        errors.set(s.kind, (e as Error).message.split('\n')[0].slice(0, 200));
        console.error(`run ${run + 1}: ${s.kind}: ${(e as Error).message}`);
      } finally {
        for (const c of conns) c.destroy();
        await sleep(2000);
      }
    }
  }
  const cmd = `npx tsx bench/scenario-5-idle-connections.ts --connections ${N} --runs ${args.runs}`;
  const note = (kind: 'postfix' | 'backstop') => errors.get(kind) ?? (kind === 'backstop' && !lab.servers.some((x) => x.kind === 'backstop') ? (lab.backstopError ?? 'not selected') : undefined);
  const row = (metric: string, m: string, better: 'higher' | 'lower', target?: string): BenchRow =>
    ({ case: `${N} idle connections`, metric, better, backstop: stat(figs.get(`backstop/${m}`) ?? []), postfix: stat(figs.get(`postfix/${m}`) ?? []), backstopNote: note('backstop'), postfixNote: note('postfix'), command: cmd, target });
  const rows = [
    row('memory MB (PSS sum) with them open', 'mem', 'lower', 'Backstop < 300 MB'),
    row('memory MB (RSS sum) with them open', 'rss', 'lower'),
    row('memory MB (PSS) idle, before', 'idle', 'lower'),
    row(`s to open and greet all ${N}`, 'open', 'lower'),
    row('ms to greet one more (median of 5)', 'greet', 'lower'),
  ];
  notes.push(`Postfix: smtpd maxproc ${N + 100} in master.cf for this scenario; smtpd_timeout = 600s on both so no connection times out during the run; connections opened 50 at a time.`);
  emitReport({ bench: 'scenario-5-idle-connections', title: `Scenario 5: ${N} concurrent idle connections`, rows, notes, seconds: (Date.now() - t0) / 1000 });
} finally {
  await lab.close();
}
