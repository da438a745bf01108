// Start-up with a large queue: 100,000 queued messages (1 KB each, deferred, some with state
// updates), then Queue.open() — recovery plus index — timed in a fresh child process so that RSS
// is the start-up's own. Target: ready in < 10 s, < 500 MB resident.
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { Queue, encodeHead, encodeRecord, encodeSizeData, encodeUpdate, REC, makeQueueId } from '../src/queue/index.js';
import { Maillog } from '../src/log/index.js';

const N = Number(process.env.BENCH_MESSAGES ?? 100_000);

if (process.argv[2] === 'child') {
  const log = new Maillog();
  log.open(undefined, { quiet: true });
  const t0 = process.hrtime.bigint();
  const q = await Queue.open({ queueDirectory: process.argv[3], maillog: log });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const rss = process.memoryUsage().rss;
  console.log(JSON.stringify({ ms, rss, messages: q.size, corrupt: q.recovery.corrupt.length }));
  await q.close();
  process.exit(0);
}

// Build the spool with the queue's own encoder (writing 100k files through accept() with fsync
// would measure the disk, not the start-up).
const dir = mkdtempSync(tmpdir() + '/backstop-bench-');
try {
  for (const q of ['incoming', 'active', 'deferred', 'hold', 'corrupt']) mkdirSync(join(dir, q));
  const content = Buffer.alloc(1024, 'x');
  const tg = Date.now();
  for (let i = 0; i < N; i++) {
    const env = {
      sender: `sender${i}@client.test`,
      recipients: [{ address: `user${i % 50}@primary.test` }],
      client: { name: 'localhost', address: '127.0.0.1', helo: 'client.test', protocol: 'ESMTP' as const },
      arrivalTime: Date.now() - i * 1000,
    };
    const { head, sizeDataOffset } = encodeHead(env);
    const rec = encodeRecord(REC.CONTENT, content);
    const xtra = encodeRecord(REC.XTRA, '');
    const endOffset = head.length + rec.length + xtra.length;
    encodeSizeData(content.length, head.length, endOffset, 1).copy(head, sizeDataOffset);
    const crc = crc32(xtra, crc32(rec, crc32(head.subarray(83))));
    const parts = [head, rec, xtra, encodeRecord(REC.END, crc.toString(16).padStart(8, '0'))];
    if (i % 3 === 0) {
      parts.push(encodeUpdate({ t: Date.now(), r: { i: [0], s: 'pending', why: 'connect to mx1.primary.test[127.0.0.2]:25: Connection refused' } }));
      parts.push(encodeUpdate({ t: Date.now(), q: { nextAttempt: Date.now() + 300_000, attempts: 1 } }));
    }
    writeFileSync(join(dir, 'deferred', makeQueueId(i + 1, i % 1_000_000)), Buffer.concat(parts));
  }
  console.log(`queue-startup: built ${N} queue files in ${((Date.now() - tg) / 1000).toFixed(1)} s`);
  const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), 'child', dir], { encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`child failed: ${child.stderr}`);
  const r = JSON.parse(child.stdout.trim().split('\n').pop()!);
  console.log(`  messages indexed: ${r.messages} (corrupt: ${r.corrupt})`);
  console.log(`  ready in:  ${(r.ms / 1000).toFixed(2)} s   (target: < 10 s)`);
  console.log(`  RSS:       ${(r.rss / 1048576).toFixed(0)} MB   (target: < 500 MB)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
