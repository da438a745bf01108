// Scenario 1 (issue 7): acceptance with the primary down, so every accepted message is queued.
// Postfix and Backstop as backup MX side by side (bench/harness/lab.ts), the same smtp-source
// load against each, interleaved run by run. Figures per case: messages per second (wall time of
// smtp-source, every message answered 250), CPU seconds per 1,000 messages (the server's cgroup,
// from the first connection until incoming/active are empty, i.e. each message deferred), and
// peak memory (sum of PSS of the server's processes, sampled every 200 ms).
// Target: at 20 sessions, 1 KB, Backstop >= 2x Postfix (Postfix here: ~460/s).
// Run: npx tsx bench/scenario-1-accept-primary-down.ts [--messages 600] [--runs 3] [--sessions 1,20,100] [--sizes 1024,102400]
import { startLab, parseArgs, stat, emitReport, settled, type BenchRow, type Server } from './harness/lab.js';
import { runSmtpSource, smtpSourceArgs } from './harness/postfix.js';

const args = parseArgs({ messages: 600, runs: 3, sessions: [1, 20, 100], sizes: [1024, 102400] });
const t0 = Date.now();
const lab = await startLab({ servers: args.servers });
const notes: string[] = [];
try {
  await lab.primaryDown();
  type Key = string;
  const rate = new Map<Key, number[]>(), cpu = new Map<Key, number[]>(), mem = new Map<Key, number[]>();
  const errors = new Map<Key, string>();
  const key = (s: Server, n: number, size: number) => `${s.kind}/${n}/${size}`;
  const push = (m: Map<Key, number[]>, k: Key, v: number) => { m.set(k, [...(m.get(k) ?? []), v]); };
  // Warm-up: processes forked, caches filled, files in place.
  for (const s of lab.servers) {
    try { await runSmtpSource({ host: '127.0.0.1', port: s.port, sessions: 20, messages: 200, size: 1024 }); }
    catch (e) { notes.push(`${s.kind} warm-up failed: ${(e as Error).message.split('\n')[0]}`); }
    await settled(s, 30_000);
    await s.deleteAll();
  }
  for (let run = 0; run < args.runs; run++) {
    for (const size of args.sizes) {
      for (const sessions of args.sessions) {
        for (const s of lab.servers) {
          const k = key(s, sessions, size);
          if (errors.has(k)) continue;
          const c0 = s.cpuSeconds();
          const sampler = s.meter.sampleMemory(200);
          try {
            const r = await runSmtpSource({ host: '127.0.0.1', port: s.port, sessions, messages: args.messages, size });
            const ok = await settled(s, 60_000);
            const c1 = s.cpuSeconds();
            const peak = await sampler.stop();
            push(rate, k, args.messages / (r.ms / 1000));
            push(cpu, k, ((c1 - c0) / args.messages) * 1000);
            push(mem, k, peak.pss / 2 ** 20);
            if (!ok) notes.push(`${s.kind}, ${sessions} sessions, ${size} B: queue not settled within 60 s (CPU figure covers acceptance plus 60 s)`);
            console.error(`run ${run + 1}: ${k}: ${(args.messages / (r.ms / 1000)).toFixed(0)} msg/s, ${(((c1 - c0) / args.messages) * 1000).toFixed(2)} CPU s/1000, ${(peak.pss / 2 ** 20).toFixed(0)} MB`);
          } catch (e) {
            await sampler.stop();
            errors.set(k, (e as Error).message.split('\n')[0].slice(0, 200));
            console.error(`run ${run + 1}: ${k}: ${(e as Error).message}`);
          }
          await s.deleteAll();
        }
      }
    }
  }
  const rows: BenchRow[] = [];
  const script = 'npx tsx bench/scenario-1-accept-primary-down.ts';
  for (const size of args.sizes) {
    for (const sessions of args.sessions) {
      const label = `${sessions} session${sessions > 1 ? 's' : ''}, ${size >= 1024 ? `${Math.round(size / 1024)} KB` : `${size} B`}`;
      const src = `smtp-source ${smtpSourceArgs({ host: '127.0.0.1', port: 2525, sessions, messages: args.messages, size }).join(' ')}`;
      const cmd = `${script} --sessions ${sessions} --sizes ${size} --messages ${args.messages} --runs ${args.runs}   # load: ${src} (port 2526 for Backstop)`;
      const get = (m: Map<Key, number[]>, kind: 'postfix' | 'backstop') => stat(m.get(`${kind}/${sessions}/${size}`) ?? []);
      const note = (kind: 'postfix' | 'backstop') => errors.get(`${kind}/${sessions}/${size}`) ?? (kind === 'backstop' && !lab.servers.some((s) => s.kind === 'backstop') ? (lab.backstopError ?? 'not selected') : undefined);
      const target = sessions === 20 && size === 1024 ? 'Backstop >= 2x Postfix' : undefined;
      rows.push({ case: label, metric: 'msgs/s accepted', better: 'higher', backstop: get(rate, 'backstop'), postfix: get(rate, 'postfix'), backstopNote: note('backstop'), postfixNote: note('postfix'), command: cmd, target });
      rows.push({ case: label, metric: 'CPU s per 1,000 msgs', better: 'lower', backstop: get(cpu, 'backstop'), postfix: get(cpu, 'postfix'), backstopNote: note('backstop'), postfixNote: note('postfix'), command: cmd });
      rows.push({ case: label, metric: 'peak memory MB (PSS)', better: 'lower', backstop: get(mem, 'backstop'), postfix: get(mem, 'postfix'), backstopNote: note('backstop'), postfixNote: note('postfix'), command: cmd });
    }
  }
  notes.push(`${args.messages} messages per run, ${args.runs} runs, servers interleaved run by run; primary (127.0.0.2:25) down: every message is deferred after its 250.`);
  notes.push('After each run both queues are emptied with postsuper -d ALL. Postfix unlinks the files; Backstop keeps them in recycle/ and writes the next run\'s messages into them (docs/queue-format.md, "Recycled queue files"), as it does with delivered mail. Its first run of the session (the low end of rows 1, 4, 7) creates new files, as Postfix does in every run; on this machine\'s ext4 without a journal each new inode costs up to a millisecond of kernel CPU.');
  notes.push('smtpd_client_connection_count_limit = 0 on both (all load comes from 127.0.0.1); otherwise the seed policy with the verify cache warm for user@primary.test.');
  emitReport({ bench: 'scenario-1-accept-primary-down', title: 'Scenario 1: acceptance with the primary down', rows, notes, seconds: (Date.now() - t0) / 1000 });
} finally {
  await lab.close();
}
