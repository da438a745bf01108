// Benchmark: in-process lookups per second with random keys.
// Targets: >= 1,000,000/s on hash/btree/lmdb tables of 1,000,000 keys; >= 500,000/s on a
// 10,000-line cidr: table.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTable, compileSource, type LookupTable } from '../src/tables/index.js';

const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
function measure(table: LookupTable, keys: string[], ms: number): { rate: number; hits: number } {
  let n = 0, hits = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms) {
    for (let i = 0; i < keys.length; i++) if (table.get(keys[i]) !== undefined) hits++;
    n += keys.length;
    now = performance.now();
  }
  return { rate: n / ((now - t0) / 1000), hits: hits / n };
}
try {
  const N = 1_000_000;
  const lines: string[] = [];
  for (let i = 0; i < N; i++) lines.push(`user${i}@example${i % 997}.com OK`);
  writeFileSync(join(dir, 'access'), lines.join('\n') + '\n');
  lines.length = 0;
  compileSource(join(dir, 'access'), () => {});
  const keys: string[] = [];
  for (let i = 0; i < 100_000; i++) {
    const r = Math.floor(Math.random() * N * 1.25); // ~80% hits, ~20% misses
    keys.push(`User${r}@Example${r % 997}.com`);
  }
  for (const type of ['hash', 'btree', 'lmdb']) {
    const t = openTable(`${type}:access`, { baseDir: dir });
    measure(t, keys, 300);
    const { rate, hits } = measure(t, keys, 2000);
    console.log(`${type}: ${(rate / 1e6).toFixed(2)} M lookups/s (target >= 1.00 M/s), ${(hits * 100).toFixed(0)}% hits`);
    t.close();
  }

  const cidr: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    const r = Math.random();
    if (r < 0.5) cidr.push(`${10 + (i % 200)}.${(i >> 4) & 255}.${(i * 7) & 255}.0/24 REJECT net ${i}`);
    else if (r < 0.8) cidr.push(`${10 + (i % 200)}.${(i >> 3) & 255}.0.0/16 OK`);
    else if (r < 0.95) cidr.push(`${10 + (i % 200)}.${i & 255}.${(i >> 8) & 255}.${(i * 13) & 255} DUNNO`);
    else cidr.push(`2001:db8:${(i & 0xffff).toString(16)}::/48 REJECT v6`);
  }
  writeFileSync(join(dir, 'clients.cidr'), cidr.join('\n') + '\n');
  const ct = openTable('cidr:clients.cidr', { baseDir: dir });
  const ips: string[] = [];
  for (let i = 0; i < 100_000; i++) {
    if (i % 10 === 0) ips.push(`2001:db8:${(Math.floor(Math.random() * 20000)).toString(16)}::${i.toString(16)}`);
    else ips.push(`${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 256)}.${Math.floor(Math.random() * 256)}.${Math.floor(Math.random() * 256)}`);
  }
  measure(ct, ips, 300);
  const { rate, hits } = measure(ct, ips, 2000);
  console.log(`cidr (10,000 lines, 90% IPv4 / 10% IPv6 keys): ${(rate / 1e6).toFixed(2)} M lookups/s (target >= 0.50 M/s), ${(hits * 100).toFixed(0)}% hits`);
  ct.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
