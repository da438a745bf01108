// lmdb: files shared with Postfix in both directions (issue 16), against Debian's `postfix` and
// `postfix-lmdb` (.ci/run installs them): what Postfix's postmap writes, Backstop's postmap reads
// with the same -q and -s output, and the other way round; deletes by one program are seen by
// the other; a Postfix-written verify cache answers through Backstop's verify store. Skipped
// where Postfix or its lmdb map type is not installed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runCli } from '../helpers/cli.js';
import { lmdbFormat } from '../../src/tables/index.js';
import { openVerifyStore } from '../../src/verify/index.js';

const POSTMAP = '/usr/sbin/postmap';
let dir: string;
let conf: string;

function postfixHasLmdb(): boolean {
  if (!existsSync(POSTMAP)) return false;
  const d = mkdtempSync(join(tmpdir(), 'backstop-pfconf-'));
  writeFileSync(join(d, 'main.cf'), '');
  const r = spawnSync('/usr/sbin/postconf', ['-c', d, '-m'], { encoding: 'utf8' });
  rmSync(d, { recursive: true, force: true });
  return r.status === 0 && r.stdout.split('\n').includes('lmdb');
}
const skip = postfixHasLmdb() ? false : "Postfix's postmap with the lmdb map type (Debian postfix-lmdb) is not installed";

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'backstop-pflmdb-'));
  conf = join(dir, 'conf');
  mkdirSync(conf);
  writeFileSync(join(conf, 'main.cf'), '');
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Out {
  code: number;
  stdout: string;
}
function postfix(...args: string[]): Out {
  const r = spawnSync(POSTMAP, ['-c', conf, ...args], { encoding: 'utf8' });
  assert.equal(r.stderr, '', `postmap ${args.join(' ')}: ${r.stderr}`);
  return { code: r.status ?? -1, stdout: r.stdout };
}
async function backstop(...args: string[]): Promise<Out> {
  const r = await runCli(['postmap', ...args]);
  assert.equal(r.stderr, '', `backstop postmap ${args.join(' ')}: ${r.stderr}`);
  return { code: r.code, stdout: r.stdout };
}

/** A source with what matters: case folding, spaces in values, UTF-8, a value on overflow pages, enough keys for branch pages. */
function source(name: string): string {
  const lines = ['Joe@Example.COM OK', 'spam.example REJECT go away', 'müller@example.de 550 5.1.1 unbekannt', `big.example ${'x'.repeat(6000)}`];
  for (let i = 0; i < 2000; i++) lines.push(`user${i}@example.net ${i % 2 ? 'OK' : 'REJECT'}`);
  const p = join(dir, name);
  writeFileSync(p, lines.join('\n') + '\n');
  return p;
}
const QUERIES = ['joe@example.com', 'JOE@EXAMPLE.COM', 'spam.example', 'müller@example.de', 'big.example', 'user1999@example.net', 'nobody@example.org', 'user'];

async function sameAnswers(ref: string): Promise<void> {
  const pf = postfix('-s', ref);
  assert.equal(pf.code, 0);
  assert.equal((await backstop('-s', ref)).stdout.split('\n').sort().join('\n'), pf.stdout.split('\n').sort().join('\n'), '-s output');
  for (const q of QUERIES) assert.deepEqual(await backstop('-q', q, ref), postfix('-q', q, ref), `-q ${q}`);
}

test("the lmdb binding writes Postfix's data format (npm run build:lmdb ran)", { skip }, () => {
  assert.equal(lmdbFormat(), '0.9', 'the lmdb package runs its prebuilt 1.0-format binary: run npm run build:lmdb (needs gcc, g++, make, python3)');
});

test("Postfix's postmap writes lmdb:, Backstop's postmap -q/-s give the same answers; deletes go both ways", { skip: skip || lmdbFormat() !== '0.9' }, async () => {
  const ref = `lmdb:${source('from-postfix')}`;
  postfix(ref);
  await sameAnswers(ref);
  assert.equal((await backstop('-d', 'spam.example', ref)).code, 0);
  assert.equal(postfix('-q', 'spam.example', ref).code, 1);
  await sameAnswers(ref);
});

test("Backstop's postmap writes lmdb:, Postfix's postmap -q/-s give the same answers; deletes go both ways", { skip: skip || lmdbFormat() !== '0.9' }, async () => {
  const ref = `lmdb:${source('from-backstop')}`;
  assert.equal((await backstop(ref)).code, 0);
  await sameAnswers(ref);
  assert.equal(postfix('-d', 'joe@example.com', ref).code, 0);
  assert.equal((await backstop('-q', 'joe@example.com', ref)).code, 1);
  await sameAnswers(ref);
  // Recompiling in place (one transaction over the existing file) stays readable to Postfix.
  assert.equal((await backstop(ref)).code, 0);
  await sameAnswers(ref);
});

test("a verify cache in Postfix's format: Backstop reads Postfix's entries, Postfix reads Backstop's", { skip: skip || lmdbFormat() !== '0.9' }, async () => {
  // verify(8)'s values: status:probed:updated:text (status 0 = deliverable).
  const p = join(dir, 'verify');
  writeFileSync(p, 'known@example.com 0:1700000000:1700000100:250 2.1.5 Ok\nunknown@example.com 2:1700000000:1700000100:550 5.1.1 no such user\n');
  postfix(`lmdb:${p}`);
  const store = await openVerifyStore(`lmdb:${p}`);
  try {
    assert.equal(store.get('known@example.com'), '0:1700000000:1700000100:250 2.1.5 Ok');
    assert.equal(store.get('unknown@example.com'), '2:1700000000:1700000100:550 5.1.1 no such user');
    await store.put('new@example.com', '0:1700000200:1700000200:250 ok');
  } finally {
    await store.close();
  }
  assert.deepEqual(postfix('-q', 'new@example.com', `lmdb:${p}`), { code: 0, stdout: '0:1700000200:1700000200:250 ok\n' });
});
