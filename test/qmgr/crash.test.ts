// Crash recovery: a child process runs queue + queue manager under a load of 2,000 messages and is
// killed with SIGKILL midway; a restarted child must deliver every message whose accept resolved
// (the 250). Duplicates (in-flight deliveries repeated) are counted and reported, loss fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startDnsServer } from '../helpers/dnsserver.js';
import { startSink } from '../helpers/sink.js';
import { freePort } from '../helpers/net.js';
import { ZONE } from './harness.js';

// Compiled tests (npm test) run the compiled child; under tsx the TypeScript one.
const compiled = import.meta.url.endsWith('.js');
const CHILD = join(import.meta.dirname, compiled ? 'crash-child.js' : 'crash-child.ts');

function run(args: string[], onLine: (l: string, kill: () => void) => void): Promise<number | string | null> {
  const child = spawn(process.execPath, [...(compiled ? [] : ['--import', 'tsx']), CHILD, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (l) => onLine(l, () => child.kill('SIGKILL')));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve(sig ?? code);
    });
  });
}

test('kill -9 during a load of 2,000 messages: every accepted message is delivered after restart', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  const port = await freePort('127.0.0.2', '127.0.0.3');
  const dns = await startDnsServer(ZONE);
  const sink = await startSink({ host: '127.0.0.2', port });
  try {
    const accepted = new Set<number>();
    const exit1 = await run(['load', dir, dns.servers, String(port), '2000'], (l, kill) => {
      if (l.startsWith('A ')) {
        accepted.add(Number(l.slice(2)));
        if (accepted.size === 1000) kill();
      }
    });
    assert.equal(exit1, 'SIGKILL');
    const beforeRestart = sink.messages.length;
    let recovered = -1;
    let empty = false;
    const exit2 = await run(['drain', dir, dns.servers, String(port), '0'], (l) => {
      if (l.startsWith('recovered ')) recovered = Number(l.slice(10));
      if (l === 'empty') empty = true;
    });
    assert.equal(exit2, 0);
    assert.ok(empty);
    const seen = new Map<number, number>();
    for (const m of sink.messages) {
      const i = Number(/^u(\d+)@/.exec(m.to[0])![1]);
      seen.set(i, (seen.get(i) ?? 0) + 1);
    }
    const lost = [...accepted].filter((i) => !seen.has(i));
    const duplicates = [...seen.values()].reduce((a, n) => a + n - 1, 0);
    process.stderr.write(`crash test: ${accepted.size} accepted before kill, ${beforeRestart} delivered before, ${recovered} recovered from active/, ${sink.messages.length} delivered in all, ${duplicates} duplicates, ${lost.length} lost\n`);
    assert.deepEqual(lost, [], 'no accepted message lost');
    assert.ok(accepted.size >= 1000);
  } finally {
    await sink.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
