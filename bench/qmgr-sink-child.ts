// Helper process for bench/qmgr-drain.ts: the primary MX (an SMTP sink on 127.0.0.2:PORT) in its
// own process, as a real primary would be, so that its CPU does not count against the queue
// manager. It sends its replies to one batch of pipelined input in one write, as a Postfix primary
// does (BENCH_SINK_FLUSH=each: one write per reply, as smtp-server does by itself). Prints
// "listening" once bound, then "done COUNT DUPS PEAK CPU_MS" (its own CPU time from listening to
// the last message).
import { startSink } from '../test/helpers/sink.js';

const port = Number(process.argv[2]);
const n = Number(process.argv[3]);
// A primary answers a pipelined group in one segment, as Postfix's smtpd does (flushPerInput).
const sink = await startSink({ host: '127.0.0.2', port, flushPerInput: process.env.BENCH_SINK_FLUSH !== 'each' });
process.stdout.write('listening\n');
const cpu0 = process.cpuUsage();
await sink.waitFor(n, 600_000);
const unique = new Set(sink.messages.map((m) => m.to[0])).size;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`done ${sink.messages.length} ${sink.messages.length - unique} ${sink.peakConnections} ${((cpu.user + cpu.system) / 1000).toFixed(0)}\n`);
await new Promise((r) => setTimeout(r, 300));
await sink.close();
process.exit(0);
