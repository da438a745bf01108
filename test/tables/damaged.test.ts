// Damaged and foreign table/cache files through the real CLI (issue 16): LMDB's C code crashes
// the process on a file it cannot read, so every open looks at the file first. Each case must end
// with a message that names the file, says what it is and how to fix it, and an ordinary exit
// status — never 139 (SIGSEGV) or a signal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync, readFileSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { runCli, repoRoot } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { lmdbFormat } from '../../src/tables/index.js';

const fixtures = join(repoRoot, 'test', 'tables', 'fixtures');
let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'backstop-damaged-'));
  // Like /etc/postfix: mail_owner must be able to pass through to a queue inside.
  chmodSync(dir, 0o755);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The fixture in the LMDB format our binding does NOT read. */
const otherFormat = (): { file: string; what: RegExp } =>
  lmdbFormat() === '0.9'
    ? { file: 'lmdbjs-10.lmdb', what: /an LMDB database in the 1\.0 data format/ }
    : { file: 'postfix-lmdb09.lmdb', what: /an LMDB database in the 0\.9 data format \(Postfix, liblmdb\); this Backstop's lmdb binding was built for the 1\.0 format: build it for Postfix's format with "npm run build:lmdb"/ };

/** A whole, valid database in our format, compiled by our own postmap. */
async function goodDatabase(): Promise<Buffer> {
  const src = join(dir, 'good');
  copyFileSync(join(fixtures, 'access'), src);
  const r = await runCli(['postmap', `hash:${src}`]);
  assert.equal(r.code, 0, r.stderr);
  return readFileSync(src + '.lmdb');
}

interface Case {
  desc: string;
  bytes: () => Buffer | Promise<Buffer>;
  what: RegExp;
}

const cases: Case[] = [
  { desc: 'zero-length', bytes: () => Buffer.alloc(0), what: /an empty file \(zero bytes\), not an LMDB database/ },
  { desc: 'random bytes', bytes: () => randomBytes(12288), what: /not an LMDB database \(no LMDB or Berkeley DB magic number/ },
  { desc: 'a text file', bytes: () => Buffer.from('a@example.com OK\n'), what: /not an LMDB database|too short for an LMDB database/ },
  { desc: "Postfix's Berkeley DB hash file", bytes: () => readFileSync(join(fixtures, 'postfix-hash.db')), what: /a Berkeley DB hash file \(Postfix's hash: format\), not an LMDB database/ },
  { desc: "Postfix's Berkeley DB btree file", bytes: () => readFileSync(join(fixtures, 'postfix-btree.db')), what: /a Berkeley DB btree file \(Postfix's btree: format\), not an LMDB database/ },
  { desc: 'the other LMDB data format', bytes: () => readFileSync(join(fixtures, otherFormat().file)), what: otherFormat().what },
  ...[10, 40, 100, 4096, 6000, 8192, 12287].map((n) => ({
    desc: `our own database truncated at ${n} bytes`,
    bytes: async () => (await goodDatabase()).subarray(0, n),
    what: /too short for an LMDB database|a damaged LMDB [01]\.[09]-format database \(truncated: /,
  })),
  {
    desc: 'valid meta pages, the root page overwritten',
    bytes: async () => {
      const b = Buffer.from(await goodDatabase());
      randomBytes(b.length - 8192).copy(b, 8192);
      return b;
    },
    what: /a damaged LMDB [01]\.[09]-format database \(the (main|free-page) tree: page \d+ is not a tree page/,
  },
];

function assertNoCrash(r: { code: number; stderr: string }): void {
  assert.notEqual(r.code, 139, 'SIGSEGV');
  assert.ok(r.code === 1 || r.code === 2, `exit ${r.code}: ${r.stderr}`);
}

for (const c of cases) {
  test(`postmap -q/-s/-d on ${c.desc}: a message naming the file, no crash`, async () => {
    const src = join(dir, 'access');
    copyFileSync(join(fixtures, 'access'), src);
    writeFileSync(src + '.lmdb', await c.bytes());
    for (const args of [['-q', 'a@example.com'], ['-s'], ['-d', 'a@example.com']]) {
      const r = await runCli(['postmap', ...args, `hash:${src}`]);
      assertNoCrash(r);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`^postmap: fatal: ${src}\\.lmdb: `));
      assert.match(r.stderr, c.what);
      if (!/0\.9 data format/.test(r.stderr)) assert.match(r.stderr, new RegExp(`rebuild it from its text source with: backstop postmap hash:${src}\\n$`));
    }
    // The fix the message names works: compiling replaces the unusable file.
    if (c.desc !== 'the other LMDB data format' || lmdbFormat() === '0.9') {
      const r = await runCli(['postmap', `hash:${src}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await runCli(['postmap', '-q', 'A@Example.com', `hash:${src}`]), { code: 0, stdout: 'OK\n', stderr: '' });
    }
  });
}

test("hash:/btree: with only Postfix's .db: the message says so and names the compile command; the .db is left alone", async () => {
  for (const type of ['hash', 'btree']) {
    const src = join(dir, `only-db-${type}`);
    copyFileSync(join(fixtures, `postfix-${type}.db`), src + '.db');
    const before = readFileSync(src + '.db');
    const r = await runCli(['postmap', '-q', 'a@example.com', `${type}:${src}`]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `postmap: fatal: open database ${src}.lmdb: No such file or directory; ${src}.db is Postfix's Berkeley DB ${type} file, which Backstop does not read: compile the text source with: backstop postmap ${type}:${src} (the text source ${src} is missing too: copy it from the Postfix host)\n`);
    copyFileSync(join(fixtures, 'access'), src);
    const s = await runCli(['postmap', '-s', `${type}:${src}`]);
    assert.match(s.stderr, new RegExp(`compile the text source with: backstop postmap ${type}:${src}\\n$`));
    assert.equal((await runCli(['postmap', `${type}:${src}`])).code, 0);
    assert.deepEqual(await runCli(['postmap', '-q', 'a@example.com', `${type}:${src}`]), { code: 0, stdout: 'OK\n', stderr: '' });
    assert.deepEqual(readFileSync(src + '.db'), before, "Postfix's .db is untouched");
  }
});

function config(name: string, port: number, verifyBytes: Buffer | undefined, tableBytes: Buffer | undefined): string {
  const c = join(dir, name);
  mkdirSync(join(c, 'data'), { recursive: true });
  copyFileSync(join(fixtures, 'access'), join(c, 'access'));
  if (tableBytes) writeFileSync(join(c, 'access.lmdb'), tableBytes);
  if (verifyBytes) writeFileSync(join(c, 'data', 'verify.lmdb'), verifyBytes);
  writeFileSync(join(c, 'main.cf'), [
    'myhostname = mx2.backup.test', 'queue_directory = spool', 'data_directory = data', 'maillog_file =',
    'inet_interfaces = 127.0.0.1', 'address_verify_map = btree:$data_directory/verify',
    'smtpd_recipient_restrictions = check_client_access hash:access, reject_unauth_destination', '',
  ].join('\n'));
  writeFileSync(join(c, 'master.cf'), `127.0.0.1:${port} inet n - n - - smtpd\n`);
  return c;
}

test('backstop check and backstop start on a damaged verify cache: an error naming the file; start binds nothing', async () => {
  const port = await freePort();
  const c = config('cache', port, randomBytes(9000), undefined);
  writeFileSync(join(c, 'access.lmdb'), await goodDatabase());
  const k = await runCli(['check', '-c', c]);
  assert.notEqual(k.code, 139);
  assert.match(k.stdout + k.stderr, new RegExp(`warning: .*main\\.cf, line 6: parameter address_verify_map: ${c}/data/verify\\.lmdb: not an LMDB database .*it is only a cache: move it away and Backstop starts a new one \\(backstop start refuses to start with this file\\)`));
  const s = await runCli(['start', '-c', c], { timeoutMs: 20_000 });
  assertNoCrash(s);
  assert.match(s.stderr, new RegExp(`backstop: fatal: cannot start: open database ${c}/data/verify\\.lmdb: not an LMDB database`));
  assert.ok(!existsSync(join(c, 'spool', 'pid', 'master.pid')), 'no master pid file: nothing was started');
});

test('backstop check and backstop start on a truncated table: an error naming the file and the postmap command', async () => {
  const port = await freePort();
  const c = config('table', port, undefined, (await goodDatabase()).subarray(0, 5000));
  const k = await runCli(['check', '-c', c]);
  assertNoCrash(k);
  assert.match(k.stdout + k.stderr, new RegExp(`${c}/access\\.lmdb: a damaged LMDB [01]\\.[09]-format database \\(truncated: 5000 bytes, shorter than its two 4096-byte meta pages\\); rebuild it from its text source with: backstop postmap hash:${c}/access`));
  const s = await runCli(['start', '-c', c], { timeoutMs: 20_000 });
  assertNoCrash(s);
  assert.match(s.stderr, /access\.lmdb: a damaged LMDB/);
  assert.match(s.stderr, /not started/);
});
