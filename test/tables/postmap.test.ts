import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { postmapCommand } from '../../src/cli/postmap.js';
import { openTable } from '../../src/tables/index.js';
import { sleep } from '../helpers/net.js';

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'backstop-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

async function run(...argv: string[]): Promise<{ rc: number; out: string; err: string }> {
  let out = '', err = '';
  const rc = await postmapCommand(argv, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, configDir: dir });
  return { rc, out, err };
}

test('compile (plain name means hash:), -q, -s, -d', async () => {
  writeFileSync(join(dir, 'relay_recipients'), 'B@Example.com OK\na@example.com OK\ndup one\ndup two\n');
  const c = await run('relay_recipients');
  assert.equal(c.rc, 0);
  assert.equal(c.out, '');
  assert.equal(c.err, `postmap: warning: ${join(dir, 'relay_recipients')}, line 4: duplicate entry: "dup"\n`);
  assert.ok(existsSync(join(dir, 'relay_recipients.lmdb')));
  assert.deepEqual(await run('-q', 'A@EXAMPLE.COM', 'hash:relay_recipients'), { rc: 0, out: 'OK\n', err: '' });
  assert.deepEqual(await run('-q', 'nobody@example.com', 'hash:relay_recipients'), { rc: 1, out: '', err: '' });
  assert.deepEqual(await run('-s', 'btree:relay_recipients'), { rc: 0, out: 'a@example.com\tOK\nb@example.com\tOK\ndup\tone\n', err: '' });
  assert.deepEqual(await run('-d', 'b@example.com', 'lmdb:relay_recipients'), { rc: 0, out: '', err: '' });
  assert.deepEqual(await run('-d', 'b@example.com', 'relay_recipients'), { rc: 1, out: '', err: '' });
  assert.deepEqual(await run('-s', `hash:${join(dir, 'relay_recipients')}`), { rc: 0, out: 'a@example.com\tOK\ndup\tone\n', err: '' });
});

test('-q/-s/-d work while a server process holds the database open', async () => {
  writeFileSync(join(dir, 'access'), 'spam.example REJECT\n');
  assert.equal((await run('hash:access')).rc, 0);
  const server = openTable('hash:access', { baseDir: dir });
  assert.equal(server.get('spam.example'), 'REJECT');
  assert.deepEqual(await run('-d', 'spam.example', 'hash:access'), { rc: 0, out: '', err: '' });
  await sleep(5);
  assert.equal(server.get('spam.example'), undefined);
  writeFileSync(join(dir, 'access'), 'spam.example DISCARD\n');
  assert.equal((await run('hash:access')).rc, 0);
  assert.deepEqual(await run('-q', 'spam.example', 'hash:access'), { rc: 0, out: 'DISCARD\n', err: '' });
  await sleep(5);
  assert.equal(server.get('spam.example'), 'DISCARD');
  server.close();
});

test('-q and -s on non-compiled types', async () => {
  writeFileSync(join(dir, 'clients.cidr'), '192.0.2.0/24 REJECT\n');
  assert.deepEqual(await run('-q', '192.0.2.7', 'cidr:clients.cidr'), { rc: 0, out: 'REJECT\n', err: '' });
  assert.deepEqual(await run('-q', '198.51.100.1', 'cidr:clients.cidr'), { rc: 1, out: '', err: '' });
  assert.deepEqual(await run('-s', 'inline:{ a=1, b=2 }'), { rc: 0, out: 'a\t1\nb\t2\n', err: '' });
  assert.deepEqual(await run('-s', 'cidr:clients.cidr'), { rc: 1, out: '', err: 'postmap: fatal: table cidr:clients.cidr: sequential access is not supported for type cidr\n' });
});

test('errors are postmap: fatal: ... with exit 1', async () => {
  const cases: Array<{ argv: string[]; err: string }> = [
    { argv: [], err: 'postmap: fatal: usage: postmap [-q key | -s | -d key] [type:]name\n' },
    { argv: ['-x', 'hash:a'], err: 'postmap: fatal: unknown option -x; usage: postmap [-q key | -s | -d key] [type:]name\n' },
    { argv: ['-q'], err: 'postmap: fatal: option -q needs a value; usage: postmap [-q key | -s | -d key] [type:]name\n' },
    { argv: ['-q', 'k', '-s', 'hash:a'], err: 'postmap: fatal: options -q, -s and -d are mutually exclusive; usage: postmap [-q key | -s | -d key] [type:]name\n' },
    { argv: ['hash:missing'], err: `postmap: fatal: open ${join(dir, 'missing')}: No such file or directory\n` },
    { argv: ['-q', 'k', 'hash:missing'], err: `postmap: fatal: open database ${join(dir, 'missing.lmdb')}: No such file or directory\n` },
    { argv: ['dbm:x'], err: 'postmap: fatal: unsupported dictionary type: dbm (known types: cidr, inline, static, texthash, regexp, pcre, hash, btree, lmdb)\n' },
    { argv: ['cidr:clients.cidr'], err: 'postmap: fatal: unsupported map type for this operation: cidr (postmap compiles hash, btree, lmdb)\n' },
    { argv: ['-d', 'k', 'texthash:x'], err: 'postmap: fatal: table texthash:x: delete is not supported for type texthash\n' },
  ];
  writeFileSync(join(dir, 'clients.cidr'), '192.0.2.0/24 REJECT\n');
  for (const c of cases) assert.deepEqual(await run(...c.argv), { rc: 1, out: '', err: c.err }, c.argv.join(' '));
  writeFileSync(join(dir, 'bad.cidr'), '192.0.2.0/24 OK\n300.1.1.1 REJECT\n');
  assert.deepEqual(await run('-q', '1.2.3.4', 'cidr:bad.cidr'), { rc: 1, out: '', err: `postmap: fatal: cidr map ${join(dir, 'bad.cidr')}, line 2: bad address pattern: "300.1.1.1"\n` });
});
