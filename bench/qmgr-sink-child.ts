// Helper process for bench/qmgr-drain.ts: the primary MX (an SMTP sink on 127.0.0.2:PORT) in its
// own process, as a real primary would be, so that its CPU does not count against the queue
// manager. Prints "listening" once bound, then "n COUNT" per 100 messages and "done COUNT DUPS PEAK".
import { startSink } from '../test/helpers/sink.js';

const port = Number(process.argv[2]);
const n = Number(process.argv[3]);
const sink = await startSink({ host: '127.0.0.2', port });
process.stdout.write('listening\n');
await sink.waitFor(n, 600_000);
const unique = new Set(sink.messages.map((m) => m.to[0])).size;
process.stdout.write(`done ${sink.messages.length} ${sink.messages.length - unique} ${sink.peakConnections}\n`);
await new Promise((r) => setTimeout(r, 300));
await sink.close();
process.exit(0);
