// Benchmark: drain after the primary returns. 10,000 messages are accepted through the queue API
// while the primary (an SMTP sink on 127.0.0.2) is down, so the queue manager defers them all
// (Postfix's backoff: the next attempt would be 5 minutes away). Then the primary starts listening
// and nobody issues a command: the destination watch (probe every
// backstop_destination_probe_interval, default 1 s, ±10% jitter) must notice and drain the queue.
// Prints seconds from the moment the primary listens until the last message arrived, and msg/s.
// Target (issue 17): ≤ 5 s for 10,000 1 KB messages. Run: npx tsx bench/qmgr-drain.ts [count] [size]
// With BENCH_PROFILE=FILE, a CPU profile of the queue manager's process covering only the drain
// (from the primary's first listening moment to the last delivery) is written to FILE.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { maillog } from '../src/log/index.js';
import { enqueue } from '../src/queue/index.js';
import { startQueueSide } from '../src/master/queueside.js';
import { startDnsServer } from '../test/helpers/dnsserver.js';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ZONE, envelope, queueSideConfig } from '../test/qmgr/harness.js';
import { freePort } from '../test/helpers/net.js';

const N = Number(process.argv[2] ?? 10_000);
const SIZE = Number(process.argv[3] ?? 1024);
const PROFILE = process.env.BENCH_PROFILE;
const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
const port = await freePort('127.0.0.2', '127.0.0.3');
const dns = await startDnsServer(ZONE);
maillog.open(undefined, { quiet: !process.env.BENCH_LOG });
// The server's own queue side (queue, queue manager, delivery agents) on its defaults; mail for
// example.test follows its MX record to the primary on 127.0.0.2:PORT. BENCH_AGENTS sets
// backstop_delivery_agents (default 0: the queue manager delivers itself).
const loaded = queueSideConfig(dir, dns.servers, port, process.env.BENCH_AGENTS ? [`backstop_delivery_agents = ${process.env.BENCH_AGENTS}`] : []);
const side = await startQueueSide(loaded.config, loaded.texts);
const { queue } = side;

const head = 'From: <s@sender.test>\r\nTo: <u@example.test>\r\nSubject: drain\r\n\r\n';
const line = `${'x'.repeat(76)}\r\n`;
const body = Buffer.from(head + line.repeat(Math.max(1, Math.round((SIZE - head.length) / line.length))));
let t = Date.now();
const CONC = 50;
let next = 0;
await Promise.all(
  Array.from({ length: CONC }, async () => {
    while (next < N) {
      const i = next++;
      await enqueue(queue, envelope('s@sender.test', [`u${i}@example.test`]), Readable.from([body]));
    }
  }),
);
console.log(`accepted ${N} messages in ${((Date.now() - t) / 1000).toFixed(1)} s (primary down)`);
t = Date.now();
while (queue.list('deferred').length < N) await new Promise((r) => setTimeout(r, 100));
console.log(`all ${N} deferred ${((Date.now() - t) / 1000).toFixed(1)} s later`);

// The primary runs in its own process; its "listening" line marks the start of the measurement.
// Compiled (dist/bench/qmgr-drain.js) or run through tsx: the sink child the same way.
const compiled = import.meta.url.endsWith('.js');
const childArgs = compiled ? [join(import.meta.dirname, 'qmgr-sink-child.js')] : ['--import', 'tsx', join(import.meta.dirname, 'qmgr-sink-child.ts')];
const child = spawn(process.execPath, [...childArgs, String(port), String(N)], { stdio: ['ignore', 'pipe', 'inherit'] });
const lines = createInterface({ input: child.stdout! });
const it = lines[Symbol.asyncIterator]();
await it.next();
const listening = Date.now();
const cpu0 = process.cpuUsage();
const main0 = mainThreadCpuMs();
const profiler = PROFILE ? new Session() : undefined;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
}
let upAt = 0;
maillog.addSink((r) => {
  if (!upAt && /is reachable again/.test(r.text)) upAt = Date.now();
});
const done = (await it.next()).value as string;
const cpu = process.cpuUsage(cpu0);
const mainMs = mainThreadCpuMs() - main0;
if (profiler) {
  const { profile } = await profiler.post('Profiler.stop');
  writeFileSync(PROFILE!, JSON.stringify(profile));
  console.log(`CPU profile of the drain: ${PROFILE}`);
}
const [, got, dups, peak, sinkCpuMs] = done.split(' ').map(Number);
const secs = (Date.now() - listening) / 1000;
console.log(`the watch saw the primary ${((upAt - listening) / 1000).toFixed(1)} s after it listened; drain after that: ${((Date.now() - upAt) / 1000).toFixed(1)} s (${(N / ((Date.now() - upAt) / 1000)).toFixed(0)} messages/s)`);
// Issue 17's targets: 10,000 messages of 1 KB within 5 s, of 100 KB within 20 s.
const target = SIZE <= 1024 ? ' (target ≤ 5 s)' : SIZE <= 102400 ? ' (target ≤ 20 s)' : '';
console.log(`drain: ${N} messages delivered ${secs.toFixed(1)} s after the primary listened${target} — ${(N / secs).toFixed(0)} messages/s overall`);
console.log(`messages at the primary: ${got}, duplicates: ${dups}, peak connections: ${peak} (limit 20)`);
console.log(`CPU per message during the drain: queue manager ${((cpu.user + cpu.system) / 1000 / N).toFixed(3)} ms (its main thread ${(mainMs / N).toFixed(3)} ms, busy ${((mainMs / 1000 / secs) * 100).toFixed(0)}% of the drain), primary (sink process) ${(sinkCpuMs / N).toFixed(3)} ms`);
while (queue.list().length > 0) await new Promise((r) => setTimeout(r, 50));
await side.stop();
await dns.close();
rmSync(dir, { recursive: true, force: true });

/** CPU time of this process's main thread (Linux: /proc/self/task/PID/stat utime+stime, in clock ticks of 10 ms). */
function mainThreadCpuMs(): number {
  const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
