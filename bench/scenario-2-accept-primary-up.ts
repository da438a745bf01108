// Scenario 2 (issue 7): acceptance with the primary up (store, then forward at once).
// The same smtp-source load against Postfix and Backstop (interleaved run by run); the primary
// is smtp-sink on 127.0.0.2:25 counting the messages it receives. Figures: end-to-end messages
// per second (first connection until the primary has them all), acceptance rate, and the delay
// of each message from its arrival to its delivery, p50/p99, read from the server's
// `status=sent` log lines (`delay=`: Postfix's "time from message arrival to delivery"; Backstop
// logs the same field).
// Run: npx tsx bench/scenario-2-accept-primary-up.ts [--messages 1000] [--runs 3] [--sessions 10] [--sizes 1024]
import { startLab, parseArgs, stat, emitReport, waitMessages, settled, type BenchRow, type Server } from './harness/lab.js';
import { runSmtpSource, smtpSourceArgs } from './harness/postfix.js';
import { percentile } from './harness/smtpclient.js';

const args = parseArgs({ messages: 1000, runs: 3, sessions: [10], sizes: [1024] });
const t0 = Date.now();
const lab = await startLab({ servers: args.servers });
const notes: string[] = [];
try {
  const sink = await lab.primaryUp();
  const figs = new Map<string, number[]>();
  const errors = new Map<string, string>();
  const push = (k: string, v: number) => figs.set(k, [...(figs.get(k) ?? []), v]);
  for (const s of lab.servers) {
    await runSmtpSource({ host: '127.0.0.1', port: s.port, sessions: 10, messages: 200, size: 1024 }).catch((e) => notes.push(`${s.kind} warm-up: ${e.message.split('\n')[0]}`));
    await settled(s, 30_000);
  }
  for (let run = 0; run < args.runs; run++) {
    for (const size of args.sizes) {
      for (const sessions of args.sessions) {
        for (const s of lab.servers) {
          const k = `${s.kind}/${sessions}/${size}`;
          if (errors.has(k)) continue;
          await settled(s, 30_000);
          const logStart = s.log().length;
          const base = sink.messages();
          const start = performance.now();
          try {
            const r = await runSmtpSource({ host: '127.0.0.1', port: s.port, sessions, messages: args.messages, size });
            const all = await waitMessages(sink, base + args.messages, 120_000);
            if (!all) throw new Error(`only ${sink.messages() - base} of ${args.messages} messages reached the primary within 120 s`);
            const e2eMs = performance.now() - start;
            const delays = [...s.log().slice(logStart).matchAll(/ to=<[^>]*>, .*?delay=([0-9.]+), .*status=sent/g)].map((m) => Number(m[1]) * 1000);
            push(`${k}/e2e`, args.messages / (e2eMs / 1000));
            push(`${k}/accept`, args.messages / (r.ms / 1000));
            if (delays.length) { push(`${k}/p50`, percentile(delays, 50)); push(`${k}/p99`, percentile(delays, 99)); }
            else notes.push(`${s.kind}: no "delay=... status=sent" log lines found; delay not measured`);
            console.error(`run ${run + 1}: ${k}: e2e ${(args.messages / (e2eMs / 1000)).toFixed(0)} msg/s, accept ${(args.messages / (r.ms / 1000)).toFixed(0)} msg/s, delay p50 ${percentile(delays, 50)} ms p99 ${percentile(delays, 99)} ms (${delays.length} lines)`);
          } catch (e) {
            errors.set(k, (e as Error).message.split('\n')[0].slice(0, 200));
            console.error(`run ${run + 1}: ${k}: ${(e as Error).message}`);
          }
        }
      }
    }
  }
  const rows: BenchRow[] = [];
  for (const size of args.sizes) {
    for (const sessions of args.sessions) {
      const label = `${sessions} sessions, ${size >= 1024 ? `${Math.round(size / 1024)} KB` : `${size} B`}`;
      const src = `smtp-source ${smtpSourceArgs({ host: '127.0.0.1', port: 2525, sessions, messages: args.messages, size }).join(' ')}`;
      const cmd = `npx tsx bench/scenario-2-accept-primary-up.ts --sessions ${sessions} --sizes ${size} --messages ${args.messages} --runs ${args.runs}   # load: ${src} (port 2526 for Backstop)`;
      const g = (kind: string, m: string) => stat(figs.get(`${kind}/${sessions}/${size}/${m}`) ?? []);
      const note = (kind: 'postfix' | 'backstop') => errors.get(`${kind}/${sessions}/${size}`) ?? (kind === 'backstop' && !lab.servers.some((x: Server) => x.kind === 'backstop') ? (lab.backstopError ?? 'not selected') : undefined);
      const row = (metric: string, m: string, better: 'higher' | 'lower', target?: string): BenchRow =>
        ({ case: label, metric, better, backstop: g('backstop', m), postfix: g('postfix', m), backstopNote: note('backstop'), postfixNote: note('postfix'), command: cmd, target });
      rows.push(row('end-to-end msgs/s', 'e2e', 'higher'));
      rows.push(row('msgs/s accepted', 'accept', 'higher'));
      rows.push(row('delay arrival→primary p50 ms', 'p50', 'lower'));
      rows.push(row('delay arrival→primary p99 ms', 'p99', 'lower'));
    }
  }
  notes.push(`${args.messages} messages per run, ${args.runs} runs, interleaved; the primary is smtp-sink (accepts everything); Postfix logs delay= with 10 ms resolution.`);
  emitReport({ bench: 'scenario-2-accept-primary-up', title: 'Scenario 2: acceptance with the primary up (store and forward)', rows, notes, seconds: (Date.now() - t0) / 1000 });
} finally {
  await lab.close();
}
