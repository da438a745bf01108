// Benchmark (issue 14): two Backstop nodes on one PostgreSQL queue drain a backlog when the
// primary returns. Both nodes (real `backstop start`, backstop_queue_store = postgres:FILE, the
// database started as the tests start it: test/helpers/postgres.ts) take N messages between them
// from smtp-source while the primary (an SMTP sink on 127.0.0.2) is down; then the primary starts
// listening and nobody issues a command: the nodes' destination watches must notice and share the
// drain through their leases. Prints the seconds from the moment the primary listens until the
// last message arrived, duplicates (one queue ID delivered twice) and the peak number of
// connections at the primary. Target: 10,000 messages within 20 s.
// Needs root, the postfix (smtp-source) and postgresql packages.
// Run: npx tsx bench/cluster-drain.ts [--messages 10000] [--sizes 1024]
import { parseArgs } from './harness/lab.js';
import { runSmtpSource } from './harness/postfix.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { freePort, sleep } from '../test/helpers/net.js';
import { relayConfigDir, startServer, type RunningServer } from '../test/helpers/server.js';
import { startSink } from '../test/helpers/sink.js';

const args = parseArgs({ messages: 10_000, runs: 1, sessions: [10], sizes: [1024] });
const N = args.messages;
const size = args.sizes[0];
const db = await startPostgres();
const sinkPort = await freePort('127.0.0.2');
const nodes: Array<{ name: string; port: number; server: RunningServer }> = [];
try {
  for (const name of ['node-a', 'node-b']) {
    const port = await freePort();
    const dir = relayConfigDir(port, sinkPort, {
      extra: ['backstop_queue_store = postgres:pg.cf', 'backstop_http_listen =', 'minimal_backoff_time = 300s'],
      files: { 'pg.cf': db.configText(`node_name = ${name}\npool_size = 8\n`) },
    });
    nodes.push({ name, port, server: await startServer(dir, port, '127.0.0.1', 60_000) });
  }
  const t0 = Date.now();
  // Half the backlog through each node, as senders spread over equal-preference MX records.
  await Promise.all(
    nodes.map((n, i) =>
      runSmtpSource({ host: '127.0.0.1', port: n.port, sessions: args.sessions[0], messages: Math.floor(N / 2) + (i === 0 ? N % 2 : 0), size, to: 'user@relay.test' }),
    ),
  );
  const queued = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM backstop.messages'))[0].n);
  console.log(`accepted ${N} messages through two nodes in ${((Date.now() - t0) / 1000).toFixed(1)} s (primary down); ${queued} in the database`);
  await sleep(2000);
  const sink = await startSink({ host: '127.0.0.2', port: sinkPort });
  const listening = Date.now();
  await sink.waitFor(queued, 300_000);
  const secs = (Date.now() - listening) / 1000;
  // Backstop's Received: header names the queue ID the message had: the same ID twice is a duplicate.
  const ids = sink.messages.map((m) => /^Received: [^]*?\bid ([0-9A-Za-z]+)/m.exec(m.raw.toString('latin1'))?.[1] ?? '?');
  await sleep(1000);
  const dups = sink.messages.length - new Set(ids).size;
  console.log(`drain: ${queued} messages delivered by two nodes ${secs.toFixed(1)} s after the primary listened (target ≤ 20 s) — ${(queued / secs).toFixed(0)} messages/s`);
  console.log(`messages at the primary: ${sink.messages.length}, duplicates: ${dups}, peak connections: ${sink.peakConnections}`);
  await sink.close();
} finally {
  for (const n of nodes) {
    await n.server.stop().catch(() => undefined);
    n.server.cleanup();
  }
  db.remove();
}
