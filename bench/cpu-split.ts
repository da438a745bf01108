// Where the CPU goes, process by process: Backstop alone in the lab (primary down), smtp-source
// load, and each Backstop process's user+system CPU (from /proc/PID/stat) per 1,000 messages.
// A diagnostic beside scenario 1, not a comparison with Postfix.
// Run: npx tsx bench/cpu-split.ts [--sessions 1] [--messages 1000] [--sizes 1024]
import { readFileSync, readdirSync } from 'node:fs';
import { startLab, parseArgs, settled } from './harness/lab.js';
import { runSmtpSource } from './harness/postfix.js';

const args = parseArgs({ messages: 1000, runs: 1, sessions: [1], sizes: [1024] });
const TICK = 100; // USER_HZ
interface Proc { pid: number; cmd: string; cpu: number }
function procs(): Proc[] {
  const out: Proc[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // The lab's Backstop runs in its meter's cgroup (bench/harness/meter.ts): its processes only.
      if (!readFileSync(`/proc/${d}/cgroup`, 'utf8').includes('backstop-')) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const env = readFileSync(`/proc/${d}/environ`, 'utf8');
      const role = /BACKSTOP_WORKER_ROLE=(\w+)/.exec(env)?.[1] ?? 'master';
      out.push({ pid: Number(d), cmd: role, cpu: (Number(f[11]) + Number(f[12])) / TICK });
    } catch { /* gone */ }
  }
  return out;
}
const lab = await startLab({ servers: ['backstop'] });
try {
  await lab.primaryDown();
  const s = lab.servers[0];
  await runSmtpSource({ host: '127.0.0.1', port: s.port, sessions: 20, messages: 200, size: 1024 });
  await settled(s, 30_000);
  for (const sessions of args.sessions) {
    for (const size of args.sizes) {
      const before = new Map(procs().map((p) => [p.pid, p]));
      const r = await runSmtpSource({ host: '127.0.0.1', port: s.port, sessions, messages: args.messages, size });
      await settled(s, 60_000);
      const after = procs();
      console.log(`${sessions} sessions, ${size} B: ${(args.messages / (r.ms / 1000)).toFixed(0)} msg/s`);
      let total = 0;
      for (const p of after) {
        const d = p.cpu - (before.get(p.pid)?.cpu ?? 0);
        total += d;
        console.log(`  ${p.cmd.padEnd(8)} pid ${p.pid}: ${((d / args.messages) * 1000).toFixed(2)} CPU ms/msg`);
      }
      console.log(`  total: ${((total / args.messages) * 1000).toFixed(2)} CPU ms/msg`);
      await s.deleteAll();
    }
  }
} finally {
  await lab.close();
}
