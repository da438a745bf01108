// Reliability: the spool fills up while mail is being accepted. Two ways, both against the real
// server: a real small tmpfs mounted on queue_directory (when this machine lets the test mount:
// root with CAP_SYS_ADMIN), and the test-only fault hook BACKSTOP_FAULT_ENOSPC_FILE (every queue
// write fails with ENOSPC while that file exists; src/master/app.ts). Either way: the client gets
// `452 4.3.1 Insufficient system storage`, mail already queued stays intact (listed, and later
// delivered byte for byte), and acceptance resumes when space returns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsServer } from '../helpers/dnsserver.js';
import { startSink } from '../helpers/sink.js';
import { freePort } from '../helpers/net.js';
import { runCli } from '../helpers/cli.js';
import { mainCf, makeConfigDir, sendOne, startBackstop, worldZone } from './harness.js';

function body(n: number, kb: number): string {
  const line = `${String(n).padStart(6, '0')} ${'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(2)}`;
  const lines = Array.from({ length: Math.ceil((kb * 1024) / (line.length + 2)) }, (_, i) => `${line} ${i}`);
  return `X-Token: ${n}\nSubject: disk full ${n}\n\n${lines.join('\n')}\n`;
}

function tryMount(path: string, size: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', path], { stdio: 'pipe', timeout: 10_000 });
    return undefined;
  } catch (err) {
    return ((err as { stderr?: Buffer }).stderr?.toString() || (err as Error).message).trim();
  }
}

async function diskFull(t: { diagnostic(s: string): void }, mode: 'tmpfs' | 'fault'): Promise<void> {
  const dns = await startDnsServer(worldZone());
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const spool = join(dir, 'spool');
  const flag = join(dir, 'disk-is-full');
  let mounted = false;
  const env: NodeJS.ProcessEnv = {};
  if (mode === 'tmpfs') {
    mkdirSync(spool);
    const err = tryMount(spool, '400k');
    if (err) {
      t.diagnostic(`tmpfs cannot be mounted here (${err}); the injected-ENOSPC test covers this machine`);
      rmSync(dir, { recursive: true, force: true });
      await dns.close();
      return;
    }
    mounted = true;
  } else env.BACKSTOP_FAULT_ENOSPC_FILE = flag;
  const server = await startBackstop(dir, port, env);
  let sink: Awaited<ReturnType<typeof startSink>> | undefined;
  try {
    const sent = new Map<number, string>();
    let full: string | undefined;
    for (let n = 0; n < 40 && !full; n++) {
      if (mode === 'fault' && n === 3) writeFileSync(flag, '');
      const text = body(n, 48);
      const r = await sendOne(port, 'someone@sender.test', ['alice@primary.test'], text);
      if (r.accepted) sent.set(n, text);
      else full = r.reply;
    }
    t.diagnostic(`${mode}: ${sent.size} messages accepted before the spool was full; then: ${full}`);
    assert.ok(sent.size >= 1, 'nothing fitted at all');
    assert.equal(full, '452 4.3.1 Insufficient system storage');
    // Still full: the next client gets the same tempfail, the server keeps answering.
    assert.equal((await sendOne(port, 'someone@sender.test', ['alice@primary.test'], body(99, 48))).reply, '452 4.3.1 Insufficient system storage');
    // What was queued before is listed intact.
    const q = await runCli(['postqueue', '-c', dir, '-p']);
    assert.match(q.stdout, new RegExp(`-- \\d+ Kbytes in ${sent.size} Requests?\\.`), q.stdout);
    // Space returns: acceptance resumes.
    if (mode === 'tmpfs') execFileSync('mount', ['-o', 'remount,size=16m', spool], { stdio: 'pipe', timeout: 10_000 });
    else rmSync(flag);
    const again = body(100, 48);
    const r = await sendOne(port, 'someone@sender.test', ['alice@primary.test'], again);
    assert.match(r.reply, /^250 2\.0\.0 Ok: queued as /);
    sent.set(100, again);
    // The primary returns: every accepted message arrives exactly once with its body intact.
    sink = await startSink({ host: '127.0.0.2', port: primaryPort });
    const msgs = await sink.waitFor(sent.size, 30_000).catch((err: Error) => { throw new Error(`${err.message}\n${server.log().slice(-6000)}`); });
    if (process.env.BATTERY_LOG) writeFileSync(process.env.BATTERY_LOG, server.log());
    const got = new Map<number, string>();
    for (const m of msgs) {
      const raw = m.raw.toString('latin1');
      const n = Number(/^X-Token: (\d+)\r$/m.exec(raw)?.[1]);
      assert.ok(!got.has(n), `message ${n} delivered twice`);
      got.set(n, raw.slice(raw.indexOf('X-Token:')));
    }
    for (const [n, text] of sent) {
      const want = text.replace(/\n/g, '\r\n');
      const have = got.get(n) ?? '';
      let at = 0;
      while (at < want.length && want[at] === have[at]) at++;
      assert.ok(have === want, `message ${n} changed or missing: ${have.length} bytes, want ${want.length}; first difference at ${at}: ${JSON.stringify(have.slice(at - 20, at + 40))} vs ${JSON.stringify(want.slice(at - 20, at + 40))}`);
    }
    t.diagnostic(`${mode}: ${sent.size} delivered intact after space returned; lost=0`);
  } finally {
    if (process.env.BATTERY_LOG) writeFileSync(process.env.BATTERY_LOG, server.log());
    await server.stop();
    await sink?.close();
    await dns.close();
    if (mounted) execFileSync('umount', ['-l', spool], { stdio: 'ignore', timeout: 10_000 });
    rmSync(dir, { recursive: true, force: true });
  }
}

test('disk full (injected ENOSPC at the queue file layer): 452 4.3.1, queued mail intact, resumes', { timeout: 90_000 }, async (t) => {
  await diskFull(t, 'fault');
});

test('disk full (a real 400 KB tmpfs as queue_directory): 452 4.3.1, queued mail intact, resumes', { timeout: 90_000 }, async (t) => {
  await diskFull(t, 'tmpfs');
});
