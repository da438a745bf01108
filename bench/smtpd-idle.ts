// Benchmark: 2,000 concurrent idle SMTP sessions (greeted, EHLO done) held by one smtpd; prints
// the resident memory and how long a new session then waits for its greeting.
// Targets: RSS < 300 MB, greeting < 100 ms. Loopback only.

import net from 'node:net';
import { Config } from '../src/config/index.js';
import { maillog } from '../src/log/index.js';
import { startSmtpd } from '../src/smtpd/index.js';
import type { RestrictionEngine } from '../src/smtpd/check/types.js';

const N = Number(process.env.SESSIONS ?? 2000);
maillog.open(undefined, { quiet: true });
const config = Config.fromText(`myhostname = bench.test
smtpd_client_connection_count_limit = 0
smtpd_client_event_limit_exceptions =
`);
const engine: RestrictionEngine = { check: async () => ({ action: 'accept' }), close: async () => undefined };
const smtpd = await startSmtpd({
  config,
  services: [{ service: '127.0.0.1:0', type: 'inet', command: 'smtpd', args: [], overrides: {}, host: '127.0.0.1', port: 0, file: 'bench', line: 1 }],
  engine,
  queue: { begin: () => { throw new Error('not used'); } },
  closeTimeoutMs: 100,
});
const port = smtpd.addresses()[0].port;

function session(ehlo: boolean): Promise<{ sock: net.Socket; greetMs: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let greetMs = 0;
    let buf = '';
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.on('error', reject);
    sock.on('data', (d) => {
      buf += d.toString();
      if (!greetMs && buf.includes('220 ')) {
        greetMs = performance.now() - t0;
        if (!ehlo) return resolve({ sock, greetMs });
        buf = '';
        sock.write('EHLO bench.client\r\n');
      } else if (greetMs && /\r\n250 [^\r\n]*\r\n$/.test(buf)) {
        resolve({ sock, greetMs });
      }
    });
  });
}

const rss0 = process.memoryUsage().rss;
const socks: net.Socket[] = [];
for (let i = 0; i < N; i += 100) {
  const batch = await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => session(true)));
  socks.push(...batch.map((b) => b.sock));
}
global.gc?.();
await new Promise((r) => setTimeout(r, 500));
const rss = process.memoryUsage().rss;
const probes: number[] = [];
for (let i = 0; i < 10; i++) {
  const { sock, greetMs } = await session(false);
  probes.push(greetMs);
  sock.destroy();
}
probes.sort((a, b) => a - b);
console.log(`idle sessions held:      ${socks.length} (target 2000)`);
console.log(`resident memory (RSS):   ${(rss / 1048576).toFixed(1)} MB total, ${((rss - rss0) / 1048576).toFixed(1)} MB for the sessions (target < 300 MB; client sockets live in this process too)`);
console.log(`new-session greeting:    median ${probes[5].toFixed(1)} ms, max ${probes[9].toFixed(1)} ms (target < 100 ms)`);
for (const s of socks) s.destroy();
await smtpd.close();
process.exit(0);
