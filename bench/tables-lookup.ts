// Benchmark: in-process lookups per second with random keys.
// Targets: >= 1,000,000/s on hash/btree/lmdb tables of 1,000,000 keys; >= 500,000/s on a
// 10,000-line cidr: table.
// Compiled tables are measured under two key distributions (keys drawn from 1,250,000 ids, so
// ~80% hits): "uniform" — every lookup an independent random key, the worst case for the hot-key
// cache (see docs/tables.md), bounded by LMDB's own random-read speed; "skewed" — Zipf-like
// (log-uniform rank, s≈1), the shape of real mail traffic where a few clients, senders and
// domains dominate. The lmdb package's raw `get` on the uniform keys is printed as the ceiling
// without a cache.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { openTable, compileSource } from '../src/tables/index.js';

const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
function measure(get: (k: string) => unknown, keys: string[], ms: number): { rate: number; hits: number } {
  let n = 0, hits = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms) {
    for (let i = 0; i < keys.length; i++) if (get(keys[i]) !== undefined) hits++;
    n += keys.length;
    now = performance.now();
  }
  return { rate: n / ((now - t0) / 1000), hits: hits / n };
}
const fmt = (r: { rate: number; hits: number }, target: string): string =>
  `${(r.rate / 1e6).toFixed(2)} M lookups/s (target >= ${target} M/s), ${(r.hits * 100).toFixed(0)}% hits`;
try {
  const N = 1_000_000;
  const SPACE = Math.floor(N * 1.25);
  const lines: string[] = [];
  for (let i = 0; i < N; i++) lines.push(`user${i}@example${i % 997}.com OK`);
  writeFileSync(join(dir, 'access'), lines.join('\n') + '\n');
  lines.length = 0;
  compileSource(join(dir, 'access'), () => {});
  const key = (id: number): string => `User${id}@Example${id % 997}.com`;
  const uniform: string[] = [];
  const skewed: string[] = [];
  for (let i = 0; i < 1_000_000; i++) {
    uniform.push(key(Math.floor(Math.random() * SPACE)));
    const rank = Math.floor(Math.exp(Math.random() * Math.log(SPACE))) - 1; // log-uniform rank 0..SPACE-1
    skewed.push(key((rank * 7_919 + 13) % SPACE)); // scatter ranks over the key space
  }
  const raw = open<string, string>({ path: join(dir, 'access.lmdb'), encoding: 'string', noSubdir: true } as never);
  measure((k) => raw.get(k.toLowerCase()), uniform, 300);
  console.log(`lmdb package get, uniform (no cache, reference): ${fmt(measure((k) => raw.get(k.toLowerCase()), uniform, 2000), '—')}`);
  raw.close();
  for (const type of ['hash', 'btree', 'lmdb']) {
    const t = openTable(`${type}:access`, { baseDir: dir });
    const get = (k: string): unknown => t.get(k);
    for (const [name, keys] of [['uniform', uniform], ['skewed', skewed]] as const) {
      measure(get, keys, 300);
      console.log(`${type}, ${name}: ${fmt(measure(get, keys, 2000), '1.00')}`);
    }
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
  const cget = (k: string): unknown => ct.get(k);
  measure(cget, ips, 300);
  console.log(`cidr (10,000 lines, 90% IPv4 / 10% IPv6 keys): ${fmt(measure(cget, ips, 2000), '0.50')}`);
  ct.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
