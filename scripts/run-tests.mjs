#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node:test and prints its summary
// (`npm test`; `npm run test:unit` passes --unit).
// Node 20's `node --test` takes file paths, not globs, so we list them here. Every test has a
// time limit and the runner exits when the files are done, so one leaked socket cannot hang CI.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// --unit: the tests that need no Debian peer (no Postfix, swaks, Redis, postgrey, Dovecot,
// dnsmasq, PostgreSQL) and finish in about a minute: everything but the interop suite, the
// fidelity suite, the reliability battery, the fuzzers, the Redis store test and the PostgreSQL
// queue store tests. Other arguments are substrings of file paths.
const UNIT_EXCLUDED = ['dist/test/interop/', 'dist/test/fidelity/', 'dist/test/battery/', 'dist/test/fuzz/', 'dist/test/verify/redis.test.js',
  'dist/test/queue/pg/store.test.js', 'dist/test/queue/pg/leases.test.js', 'dist/test/queue/pg/replication.test.js',
  'dist/test/queue/pg/slots.test.js', 'dist/test/queue/pg/admin.test.js', 'dist/test/cli/pgqueue.test.js', 'dist/test/cli/check-pg.test.js',
  'dist/test/queue/pg/queue.test.js', 'dist/test/cluster/'];
const args = process.argv.slice(2);
const unit = args.includes('--unit');
const filter = args.filter((a) => a !== '--unit');
let files = find('dist/test').sort();
if (unit) files = files.filter((f) => !UNIT_EXCLUDED.some((x) => f.startsWith(x)));
if (filter.length) files = files.filter((f) => filter.some((x) => f.includes(x)));
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=2', '--test-force-exit', '--test-timeout=240000', ...files], {
  stdio: 'inherit',
  env: { ...process.env, BACKSTOP_TEST: '1' },
});
process.exit(r.status ?? 1);
