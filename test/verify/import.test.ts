// `backstop verify import` (issue 16) through the real CLI: a Postfix verify cache — its lmdb:
// file, or `postmap -s` output of a btree: one — comes in with each entry's status and
// probed/updated times; a newer entry already in the cache stays; bad lines are skipped with a
// warning. The lmdb: case uses Debian's postfix-lmdb when it is installed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runCli } from '../helpers/cli.js';
import { lmdbFormat } from '../../src/tables/index.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'backstop-import-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string): string {
  const c = join(dir, name);
  mkdirSync(join(c, 'data'), { recursive: true });
  writeFileSync(join(c, 'main.cf'), 'myhostname = mx2.backup.test\nqueue_directory = spool\ndata_directory = data\nmaillog_file =\naddress_verify_map = btree:$data_directory/verify\n');
  return c;
}

const DUMP = [
  'known@example.com\t0:1700000000:1700000100:250 2.1.5 Ok',
  'gone@example.com\t2:1700000000:1700000200:550 5.1.1 <gone@example.com>: Recipient address rejected',
  '_LAST_CACHE_CLEANUP_COMPLETED_\t1700000300',
  'garbage@example.com\tnot a record',
  '',
].join('\n');

test('verify import from postmap -s output keeps status and times; a newer cache entry stays; bad lines are skipped', async () => {
  const c = config('text');
  const r = await runCli(['verify', '-c', c, 'import', '-'], { input: DUMP });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'verify import into btree:data/verify: 2 imported, 0 kept (the cache\'s entry is as new or newer), 1 skipped\n');
  assert.equal(r.stderr, 'verify: warning: skipping "garbage@example.com": not a verify cache entry: "not a record"\n');
  const s = await runCli(['postmap', '-s', `btree:${join(c, 'data', 'verify')}`]);
  assert.equal(s.stdout, 'gone@example.com\t2:1700000000:1700000200:550 5.1.1 <gone@example.com>: Recipient address rejected\nknown@example.com\t0:1700000000:1700000100:250 2.1.5 Ok\n');
  // The same import again: every entry is as new as the cache's, nothing changes; -f replaces.
  const again = await runCli(['verify', '-c', c, 'import', '-'], { input: 'known@example.com\t2:1600000000:1600000000:old\n' });
  assert.match(again.stdout, /0 imported, 1 kept/);
  const forced = await runCli(['verify', '-c', c, 'import', '-f', '-'], { input: 'known@example.com\t2:1600000000:1600000000:old\n' });
  assert.match(forced.stdout, /1 imported, 0 kept/);
  assert.equal((await runCli(['postmap', '-q', 'known@example.com', `btree:${join(c, 'data', 'verify')}`])).stdout, '2:1600000000:1600000000:old\n');
});

const postmap = '/usr/sbin/postmap';
test("verify import lmdb:PATH reads Postfix's own lmdb: verify cache", { skip: !existsSync(postmap) || lmdbFormat() !== '0.9' ? "needs Postfix's postmap (postfix-lmdb) and the 0.9-format binding" : false }, async () => {
  const c = config('lmdb');
  const pf = join(dir, 'pfconf');
  mkdirSync(pf, { recursive: true });
  writeFileSync(join(pf, 'main.cf'), '');
  const src = join(dir, 'postfix-verify');
  writeFileSync(src, DUMP.split('\n').filter((l) => l && !l.startsWith('garbage')).join('\n') + '\n');
  const m = spawnSync(postmap, ['-c', pf, `lmdb:${src}`], { encoding: 'utf8' });
  if (m.status !== 0) return assert.fail(`postmap lmdb: ${m.stderr}`);
  const r = await runCli(['verify', '-c', c, 'import', `lmdb:${src}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /: 2 imported, 0 kept .*, 0 skipped\n$/);
  const show = await runCli(['verify', '-c', c, 'show', 'gone@example.com']);
  assert.match(show.stdout, /status: undeliverable/);
  assert.match(show.stdout, /entry: gone@example.com\t2:1700000000:1700000200:550 5\.1\.1/);
});
