// Scenario 4 (issue 7): drain after the primary returns. With the primary down, smtp-source
// queues N messages (default 10,000) on the server; then the primary (smtp-sink, counting) comes
// back and we record messages delivered over time. Backstop drains on its own (its destination
// watch). Postfix is watched on its own for --cap seconds (its deferred messages wait for their
// backoff, minimal_backoff_time = 300 s), then `postqueue -f` is run and the drain timed from it.
// Writes docs/perf/scenario-4-drain.svg (delivered over time, both servers).
// Target (issue 17): Backstop drained within 5 s of the primary's return (1 KB messages).
// Run: npx tsx bench/scenario-4-drain.ts [--messages 10000] [--runs 1] [--cap 60]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startLab, parseArgs, stat, textStat, emitReport, settled, type BenchRow, type Server, type Lab } from './harness/lab.js';
import { runSmtpSource, smtpSourceArgs } from './harness/postfix.js';
import { repoRoot } from './harness/backstop.js';
import { lineChart, thin, type Series } from './harness/svg.js';
import { sleep } from './harness/proc.js';

const args = parseArgs({ messages: 10_000, runs: 1, cap: 60 });
const DRAIN_CAP_S = 300;
const t0 = Date.now();
const lab = await startLab({ servers: args.servers });
const notes: string[] = [];

interface Drain { queued: number; fillS: number; points: Array<[number, number]>; drainedS?: number; atCap?: number; flushAt?: number; flushDrainS?: number }

async function drain(l: Lab, s: Server): Promise<Drain> {
  await l.primaryDown();
  await s.deleteAll();
  const fill = await runSmtpSource({ host: '127.0.0.1', port: s.port, sessions: 20, messages: args.messages, size: 1024 });
  if (!(await settled(s, 300_000))) notes.push(`${s.kind}: queue not settled 300 s after filling`);
  const queued = s.queue().total;
  if (queued < args.messages) notes.push(`${s.kind}: ${queued} of ${args.messages} messages in the queue after filling`);
  const sink = await l.primaryUp();
  const start = performance.now();
  const d: Drain = { queued, fillS: fill.ms / 1000, points: [[0, 0]] };
  const now = () => (performance.now() - start) / 1000;
  for (;;) {
    await sleep(250);
    const t = now(), n = sink.messages();
    d.points.push([t, n]);
    if (n >= queued) { if (d.flushAt === undefined) d.drainedS = t; else d.flushDrainS = t - d.flushAt; break; }
    if (s.kind === 'postfix' && d.flushAt === undefined && t >= args.cap) {
      d.atCap = n;
      d.flushAt = now();
      await s.flush();
    }
    if (t > (d.flushAt ?? 0) + DRAIN_CAP_S) break;
  }
  await l.primaryDown();
  await s.deleteAll();
  return d;
}

try {
  const results = new Map<string, Drain[]>();
  const errors = new Map<string, string>();
  for (let run = 0; run < args.runs; run++) {
    for (const s of lab.servers) {
      if (errors.has(s.kind)) continue;
      try {
        const d = await drain(lab, s);
        results.set(s.kind, [...(results.get(s.kind) ?? []), d]);
        console.error(`run ${run + 1}: ${s.kind}: queued ${d.queued} in ${d.fillS.toFixed(1)} s; drained ${d.drainedS?.toFixed(1) ?? '-'} s on its own${d.flushAt !== undefined ? `; ${d.atCap} delivered after ${args.cap} s; with postqueue -f drained in ${d.flushDrainS?.toFixed(1) ?? 'not within ' + DRAIN_CAP_S} s` : ''}`);
      } catch (e) {
        errors.set(s.kind, (e as Error).message.split('\n')[0].slice(0, 200));
        console.error(`run ${run + 1}: ${s.kind}: ${(e as Error).message}`);
      }
    }
  }
  const cmd = `npx tsx bench/scenario-4-drain.ts --messages ${args.messages} --runs ${args.runs} --cap ${args.cap}   # fill: smtp-source ${smtpSourceArgs({ host: '127.0.0.1', port: 2525, sessions: 20, messages: args.messages, size: 1024 }).join(' ')}; then smtp-sink -c 127.0.0.2:25`;
  const note = (kind: 'postfix' | 'backstop') => errors.get(kind) ?? (kind === 'backstop' && !lab.servers.some((x) => x.kind === 'backstop') ? (lab.backstopError ?? 'not selected') : undefined);
  const bs = results.get('backstop') ?? [], pf = results.get('postfix') ?? [];
  const ownStat = (ds: Drain[], cap: number) => {
    if (!ds.length) return null;
    const done = ds.filter((d) => d.drainedS !== undefined).map((d) => d.drainedS!);
    if (done.length === ds.length) return stat(done);
    const d = ds.find((x) => x.drainedS === undefined)!;
    return textStat(`not drained after ${cap} s (${d.atCap ?? d.points[d.points.length - 1][1]} of ${d.queued} delivered)`, ds.length);
  };
  const rate = (ds: Drain[], flushed: boolean) => stat(ds.map((d) => (flushed ? (d.flushDrainS ? d.queued / d.flushDrainS : NaN) : (d.drainedS ? d.queued / d.drainedS : NaN))));
  const label = `${args.messages} queued messages`;
  const rows: BenchRow[] = [
    { case: `${label}, on its own`, metric: 's from the primary\'s return to empty', better: 'lower', backstop: ownStat(bs, DRAIN_CAP_S), postfix: ownStat(pf, args.cap), backstopNote: note('backstop'), postfixNote: note('postfix'), command: cmd, target: 'Backstop <= 5 s' },
    { case: `${label}, Postfix with postqueue -f`, metric: 's to empty (Postfix: from the flush)', better: 'lower', backstop: ownStat(bs, DRAIN_CAP_S), postfix: pf.length ? (pf.every((d) => d.flushDrainS !== undefined) ? stat(pf.map((d) => d.flushDrainS!)) : textStat(`not drained ${DRAIN_CAP_S} s after the flush`)) : null, backstopNote: note('backstop'), postfixNote: note('postfix'), command: cmd },
    { case: `${label}, drain rate`, metric: 'msgs/s delivered (Postfix: after the flush)', better: 'higher', backstop: rate(bs, false), postfix: rate(pf, true), backstopNote: note('backstop'), postfixNote: note('postfix'), command: cmd },
    { case: `${label}, filling the queue`, metric: 'msgs/s accepted (20 sessions, 1 KB)', better: 'higher', backstop: stat(bs.map((d) => d.queued / d.fillS)), postfix: stat(pf.map((d) => d.queued / d.fillS)), backstopNote: note('backstop'), postfixNote: note('postfix'), command: cmd },
  ];
  const series: Series[] = [];
  if (bs.length) series.push({ name: 'Backstop (on its own)', color: '#1f77b4', points: thin(bs[0].points) });
  if (pf.length) series.push({ name: `Postfix (postqueue -f at ${args.cap} s)`, color: '#d62728', points: thin(pf[0].points), dashed: false });
  const charts = [];
  if (series.length) {
    const dir = join(repoRoot, 'docs', 'perf');
    mkdirSync(dir, { recursive: true });
    const svg = lineChart(series, {
      title: `Drain of ${args.messages} queued messages after the primary returns`,
      xLabel: 'seconds since the primary came back', yLabel: 'messages delivered to the primary',
      markers: pf.length ? [{ x: args.cap, label: 'Postfix: postqueue -f', color: '#d62728' }] : [],
    });
    writeFileSync(join(dir, 'scenario-4-drain.svg'), svg);
    charts.push({ file: 'docs/perf/scenario-4-drain.svg', alt: 'messages delivered over time after the primary returns, Backstop and Postfix' });
  }
  notes.push(`Without a flush Postfix retries a deferred message only after minimal_backoff_time (300 s) and the next queue_run_delay scan (300 s); the baseline measured 590 s. This run waits --cap ${args.cap} s, then runs postqueue -f.`);
  emitReport({ bench: 'scenario-4-drain', title: 'Scenario 4: drain after the primary returns', rows, notes, charts, seconds: (Date.now() - t0) / 1000 });
} finally {
  await lab.close();
}
