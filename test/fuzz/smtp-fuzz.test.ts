// Fuzzes the SMTP command parser: the parser functions of src/smtpd/syntax.ts in a worker
// (smtp-targets.ts; no crash, no hang, every failure a clear 5xx reply), then the real
// `backstop start` over sockets: random and mutated command lines on a few sessions for
// FUZZ_SECONDS (default 3; FUZZ_SEED picks the run). Every reply line must be an SMTP reply,
// the process must stay up, and a normal transaction must still work afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { runFuzz, describeFailures, fuzzSeconds, fuzzSeed, inputFor } from './fuzz.js';
import { SMTP_CORPUS, smtpCommand } from './smtp-targets.js';
import { startDnsServer } from '../helpers/dnsserver.js';
import { startSink } from '../helpers/sink.js';
import { freePort } from '../helpers/net.js';
import { RawClient } from '../helpers/smtp-client.js';
import { mainCf, makeConfigDir, sendOne, startBackstop, worldZone } from '../battery/harness.js';

// From compiled tests (npm test) the targets are .js; under tsx they are .ts.
const targets = new URL(import.meta.url.endsWith('.ts') ? './smtp-targets.ts' : './smtp-targets.js', import.meta.url).href;

for (const name of ['smtpCommand', 'smtpGarbage']) {
  test(`fuzz ${name}: syntax.ts parsers never crash or hang, every failure a 5xx reply`, { timeout: 120_000 }, async (t) => {
    const r = await runFuzz(targets, name);
    t.diagnostic(`${name}: ${r.iterations} iterations (seed ${r.seed})`);
    console.log(`fuzz ${name}: ${r.iterations} iterations, seed ${r.seed}`);
    assert.ok(r.iterations > 0);
    assert.equal(r.failures.length, 0, describeFailures(r));
  });
}

test('fuzz the real server over sockets: every reply an SMTP reply, no death, normal session afterwards', { timeout: 120_000 }, async (t) => {
  const dns = await startDnsServer(worldZone());
  const primaryPort = await freePort('127.0.0.2');
  const sink = await startSink({ host: '127.0.0.2', port: primaryPort });
  const port = await freePort();
  const dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort, ['smtpd_timeout = 5s']),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const server = await startBackstop(dir, port);
  const seed = fuzzSeed();
  const seconds = fuzzSeconds();
  const SESSIONS = 3;
  const REPLY = /^[2-5]\d\d(?:[ -]|$)/;
  let lines = 0;
  let sessions = 0;
  const bad: string[] = [];
  try {
    const end = Date.now() + seconds * 1000;
    const worker = async (w: number): Promise<void> => {
      let i = 0;
      while (Date.now() < end && bad.length < 5) {
        sessions++;
        const c = await RawClient.connect(port);
        try {
          const g = await c.read(5000);
          if (g.code !== 220) bad.push(`greeting: ${g.text}`);
          while (Date.now() < end && !c.closed) {
            const input = inputFor(seed + w, i++, SMTP_CORPUS, []).replace(/[\r\n]/g, ' ');
            const sent = input;
            let r;
            try {
              r = await c.cmd(input, 5000);
            } catch (err) {
              // The server may end the session (QUIT, 421 too many errors); it must never go silent.
              if (c.closed) break;
              bad.push(`no reply to ${JSON.stringify(sent)}: ${(err as Error).message}`);
              break;
            }
            lines++;
            for (const l of r.lines) if (!REPLY.test(l)) bad.push(`reply line ${JSON.stringify(l)} to ${JSON.stringify(sent)}`);
            if (r.code === 354) {
              const e = await c.cmd('.', 5000);
              for (const l of e.lines) if (!REPLY.test(l)) bad.push(`reply line ${JSON.stringify(l)} after DATA`);
            } else if (r.code === 334) {
              const e = await c.cmd('*', 5000);
              for (const l of e.lines) if (!REPLY.test(l)) bad.push(`reply line ${JSON.stringify(l)} after AUTH`);
            }
            if (r.code === 221 || /^421 /.test(r.text)) {
              await c.waitClosed(5000);
              break;
            }
          }
        } finally {
          c.close();
        }
      }
    };
    await Promise.all(Array.from({ length: SESSIONS }, (_, w) => worker(w)));
    const msg = `socket fuzz: ${lines} command lines on ${sessions} sessions in ${seconds} s (seed ${seed})`;
    t.diagnostic(msg);
    console.log(msg);
    assert.deepEqual(bad, []);
    assert.ok(lines > 0);
    assert.equal(server.child.exitCode, null, 'the server process died');
    assert.equal(server.child.signalCode, null, 'the server process was killed');
    const r = await sendOne(port, 'someone@sender.test', ['alice@primary.test'], 'Subject: after fuzz\n\nstill alive\n');
    assert.match(r.reply, /^250 2\.0\.0 Ok: queued as /);
    await sink.waitFor(1, 15_000);
    assert.doesNotMatch(server.log(), /internal error|TypeError|RangeError|panic|fatal/);
  } finally {
    await server.stop();
    await sink.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
