// Benchmark: `postmap hash:access` on a 1,000,000-line access table.
// Targets: at most 10 s and at most 1 GB peak RSS.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postmapCommand } from '../src/cli/postmap.js';

const LINES = 1_000_000;
const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
try {
  const parts: string[] = [];
  const actions = ['OK', 'REJECT', '550 5.7.1 go away', 'DUNNO', 'permit_mynetworks'];
  for (let i = 0; i < LINES; i++) {
    const k = i % 3 === 0 ? `user${i}@example${i % 997}.com` : i % 3 === 1 ? `host${i}.example.net` : `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    parts.push(`${k}\t${actions[i % actions.length]}`);
  }
  const file = join(dir, 'access');
  writeFileSync(file, parts.join('\n') + '\n');
  parts.length = 0;
  const rssBefore = process.memoryUsage().rss;
  let err = '';
  const t0 = process.hrtime.bigint();
  const rc = await postmapCommand([`hash:${file}`], { stdout: () => {}, stderr: (s) => { err += s; }, configDir: dir });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const peakMb = process.resourceUsage().maxRSS / 1024;
  if (rc !== 0) throw new Error(`postmap failed: ${err}`);
  // Recompile over the existing database (the in-place, one-transaction path).
  const t1 = process.hrtime.bigint();
  const rc2 = await postmapCommand([`hash:${file}`], { stdout: () => {}, stderr: (s) => { err += s; }, configDir: dir });
  const secs2 = Number(process.hrtime.bigint() - t1) / 1e9;
  if (rc2 !== 0) throw new Error(`postmap failed: ${err}`);
  const peak2 = process.resourceUsage().maxRSS / 1024;
  console.log(`postmap compile, ${LINES} lines (new database):      ${secs.toFixed(2)} s   (target <= 10 s)`);
  console.log(`postmap compile, ${LINES} lines (replace existing):  ${secs2.toFixed(2)} s   (target <= 10 s)`);
  console.log(`peak RSS: ${peakMb.toFixed(0)} MB after first compile, ${peak2.toFixed(0)} MB after both (target <= 1024 MB; RSS before compile ${(rssBefore / 1048576).toFixed(0)} MB incl. the generator)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
