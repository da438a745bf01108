import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, utimesSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTable, TableList, TABLE_TYPES, LmdbDict, compileSource, type LookupTable } from '../../src/tables/index.js';
import { sleep } from '../helpers/net.js';

let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), 'backstop-')); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('registry', () => {
  test('known types', () => {
    assert.deepEqual([...TABLE_TYPES].sort(), ['btree', 'cidr', 'hash', 'inline', 'lmdb', 'pcre', 'regexp', 'static', 'texthash']);
  });
  test('unknown type is a clear error', () => {
    assert.throws(() => openTable('mysql:/etc/x.cf'), { message: 'unsupported dictionary type: mysql (in "mysql:/etc/x.cf"; known types: cidr, inline, static, texthash, regexp, pcre, hash, btree, lmdb)' });
  });
  test('missing type', () => {
    assert.throws(() => openTable('/etc/access'), { message: 'table "/etc/access": need type:name (known types: cidr, inline, static, texthash, regexp, pcre, hash, btree, lmdb)' });
  });
  test('missing name', () => {
    assert.throws(() => openTable('texthash:'), { message: 'table "texthash:": missing table name after "texthash:"' });
  });
  test('missing file names the file', () => {
    assert.throws(() => openTable('texthash:nope', { baseDir: dir }), { message: `open ${join(dir, 'nope')}: No such file or directory` });
    assert.throws(() => openTable('cidr:/nonexistent/x.cidr'), { message: 'open /nonexistent/x.cidr: No such file or directory' });
    assert.throws(() => openTable('hash:nope', { baseDir: dir }), { message: `open database ${join(dir, 'nope.lmdb')}: No such file or directory` });
  });
});

describe('inline and static', () => {
  test('inline match, no match, case folding, braces', () => {
    const t = openTable('inline:{ Foo=bar, baz=qux, { k3 = value with spaces } }');
    assert.equal(t.get('foo'), 'bar');
    assert.equal(t.get('FOO'), 'bar');
    assert.equal(t.get('k3'), 'value with spaces');
    assert.equal(t.get('nope'), undefined);
  });
  test('inline errors', () => {
    assert.throws(() => openTable('inline:{ novalue }'), { message: 'inline:{ novalue }: missing \'=\' after attribute name: "novalue"' });
    assert.throws(() => openTable('inline:a=b'), { message: 'inline:a=b: inline table must be enclosed in { }' });
    assert.throws(() => openTable('inline:{ a=b'), { message: "inline:{ a=b: missing '}' at end of table" });
  });
  test('static returns its value for every key', () => {
    assert.equal(openTable('static:OK').get('anything'), 'OK');
    assert.equal(openTable('static:{ 550 no such user }').get('x'), '550 no such user');
  });
});

describe('texthash', () => {
  test('format: comments, continuation, folding, first duplicate wins with warning', () => {
    const p = write('th', '# comment\nUser@Example.com OK\n\nlong REJECT\n  with continuation\n   # indented comment\ndup first\ndup second\nempty\n');
    const warnings: string[] = [];
    const t = openTable('texthash:th', { baseDir: dir, warn: (m) => warnings.push(m) });
    assert.equal(t.get('user@example.com'), 'OK');
    assert.equal(t.get('USER@EXAMPLE.COM'), 'OK');
    assert.equal(t.get('long'), 'REJECT with continuation');
    assert.equal(t.get('dup'), 'first');
    assert.equal(t.get('empty'), '');
    assert.equal(t.get('nothere'), undefined);
    assert.deepEqual(warnings, [`${p}, line 8: duplicate entry: "dup"`]);
    assert.deepEqual([...t.entries!()].map(([k]) => k), ['user@example.com', 'long', 'dup', 'empty']);
  });
  test('reload after the file changes', () => {
    const p = write('th2', 'a 1\n');
    const t = openTable('texthash:th2', { baseDir: dir, checkIntervalMs: 0 });
    assert.equal(t.get('a'), '1');
    writeFileSync(p, 'a 2\nb 3\n');
    utimesSync(p, new Date(), new Date(Date.now() + 5000));
    assert.equal(t.get('a'), '2');
    assert.equal(t.get('b'), '3');
  });
  test('throttled: no re-stat before the interval', () => {
    const p = write('th3', 'a 1\n');
    const t = openTable('texthash:th3', { baseDir: dir, checkIntervalMs: 60_000 });
    writeFileSync(p, 'a 2\n');
    utimesSync(p, new Date(), new Date(Date.now() + 5000));
    assert.equal(t.get('a'), '1');
    (t as LookupTable & { refresh(): void }).refresh();
    assert.equal(t.get('a'), '2');
  });
  test('file removed after open: lookups fail with the file name, recover when it returns', () => {
    const p = write('th4', 'a 1\n');
    const t = openTable('texthash:th4', { baseDir: dir, checkIntervalMs: 0 });
    unlinkSync(p);
    assert.throws(() => t.get('a'), { message: `open ${p}: No such file or directory` });
    writeFileSync(p, 'a 5\n');
    assert.equal(t.get('a'), '5');
  });
});

describe('cidr', () => {
  test('a rule whose result contains a carriage return parses (fuzzer regression: TypeError)', () => {
    const p = write('crlf.cidr', '10.0.0.0/8 REJECT a\rb\r\n1.2.3.4\u2028x OK\n');
    const t = openTable(`cidr:${p}`);
    assert.equal(t.get('10.1.2.3'), 'REJECT a\rb');
    t.close();
    const q = write('cr.cidr', '1.2.3.4 OK\n\r\n\r}x OK\n');
    assert.throws(() => openTable(`cidr:${q}`), { message: `cidr map ${q}, line 3: bad address pattern: "}x"` });
  });
  test('first match wins, bare address, IPv6, brackets, no match', () => {
    write('c1', [
      '192.168.1.0/24   first',
      '192.168.0.0/16   second',
      '192.168.1.7      shadowed',
      '10.0.0.1         host',
      '[172.16.0.0]/12  bracketed',
      '2001:db8::/32    six',
      '2001:0db8:0000::1 sixhost',
      '0.0.0.0/0        any4',
    ].join('\n'));
    const t = openTable('cidr:c1', { baseDir: dir });
    assert.equal(t.get('192.168.1.7'), 'first');
    assert.equal(t.get('192.168.2.1'), 'second');
    assert.equal(t.get('10.0.0.1'), 'host');
    assert.equal(t.get('172.20.1.1'), 'bracketed');
    assert.equal(t.get('2001:db8::1'), 'six');
    assert.equal(t.get('2001:DB8:0:0:0:0:0:1'), 'six');
    assert.equal(t.get('8.8.8.8'), 'any4');
    assert.equal(t.get('2002::1'), undefined);
    assert.equal(t.get('not-an-ip'), undefined);
  });
  test('IPv6 prefix not on a nibble boundary, and later broader rule', () => {
    write('c2', '2001:db8:8000::/33 upper\n::/0 rest\n');
    const t = openTable('cidr:c2', { baseDir: dir });
    assert.equal(t.get('2001:db8:8000::5'), 'upper');
    assert.equal(t.get('2001:db8:ffff::5'), 'upper');
    assert.equal(t.get('2001:db8:7fff::5'), 'rest');
    assert.equal(t.get('10.0.0.1'), undefined);
  });
  test('negation and order between negated and indexed rules', () => {
    write('c3', '10.1.0.0/16 ten-one\n!10.0.0.0/8 not-ten\n10.0.0.0/8 ten\n');
    const t = openTable('cidr:c3', { baseDir: dir });
    assert.equal(t.get('10.1.2.3'), 'ten-one');
    assert.equal(t.get('11.1.1.1'), 'not-ten');
    assert.equal(t.get('10.9.9.9'), 'ten');
  });
  test('if/endif, nested and negated', () => {
    write('c4', 'if 10.0.0.0/8\n10.1.0.0/16 inner\nif !10.2.0.0/16\n10.3.0.0/16 nested\nendif\nendif\n10.0.0.0/8 outer\n');
    const t = openTable('cidr:c4', { baseDir: dir });
    assert.equal(t.get('10.1.1.1'), 'inner');
    assert.equal(t.get('10.3.1.1'), 'nested');
    assert.equal(t.get('10.2.1.1'), 'outer');
    assert.equal(t.get('10.4.1.1'), 'outer');
  });
  test('leading-zero IPv4 octets are octal', () => {
    write('c5', '010.0.0.1 octal\n');
    assert.equal(openTable('cidr:c5', { baseDir: dir }).get('8.0.0.1'), 'octal');
  });
  test('inline cidr:{ {rule}, {rule} }', () => {
    const t = openTable('cidr:{ {192.0.2.0/24 REJECT}, {0.0.0.0/0 OK} }');
    assert.equal(t.get('192.0.2.9'), 'REJECT');
    assert.equal(t.get('198.51.100.1'), 'OK');
  });
  test('reload after the file changes', () => {
    const p = write('c6', '192.0.2.0/24 old\n');
    const t = openTable('cidr:c6', { baseDir: dir, checkIntervalMs: 0 });
    assert.equal(t.get('192.0.2.1'), 'old');
    writeFileSync(p, '192.0.2.0/24 new\n');
    utimesSync(p, new Date(), new Date(Date.now() + 5000));
    assert.equal(t.get('192.0.2.1'), 'new');
  });
  const bad: Array<{ desc: string; text: string; message: (p: string) => string }> = [
    { desc: 'bad net/mask', text: '# c\n1.2.3.0/24 ok\nx/8 REJECT\n', message: (p) => `cidr map ${p}, line 3: bad net/mask pattern: "x/8"` },
    { desc: 'mask too long', text: '1.2.3.0/33 REJECT\n', message: (p) => `cidr map ${p}, line 1: bad net/mask pattern: "1.2.3.0/33"` },
    { desc: 'bad address', text: '1.2.3 REJECT\n', message: (p) => `cidr map ${p}, line 1: bad address pattern: "1.2.3"` },
    { desc: 'host bits', text: '1.2.3.4/24 REJECT\n', message: (p) => `cidr map ${p}, line 1: non-null host address bits in "1.2.3.4/24", perhaps you should use "1.2.3.0/24" instead` },
    { desc: 'host bits v6', text: '2001:db8::1/32 REJECT\n', message: (p) => `cidr map ${p}, line 1: non-null host address bits in "2001:db8::1/32", perhaps you should use "2001:db8::/32" instead` },
    { desc: 'no result', text: '\n1.2.3.4\n', message: (p) => `cidr map ${p}, line 2: no lookup result for pattern "1.2.3.4"` },
    { desc: 'endif without if', text: 'endif\n', message: (p) => `cidr map ${p}, line 1: ENDIF without matching IF` },
    { desc: 'if without endif', text: '1.2.3.4 x\nif 1.0.0.0/8\n', message: (p) => `cidr map ${p}, line 2: IF has no matching ENDIF` },
  ];
  for (const c of bad) {
    test(`error: ${c.desc}`, () => {
      const p = write('cbad', c.text);
      assert.throws(() => openTable(`cidr:${p}`), { message: c.message(p) });
    });
  }
});

describe('regexp and pcre', () => {
  test('first match, case-insensitive by default, $1 substitution', () => {
    write('r1', '/^(.*)@example\\.com$/ user $1 ok\n/@example\\.com$/ never\n/^postmaster@/i case-sensitive\n/x/ $${1} literal\n');
    const t = openTable('regexp:r1', { baseDir: dir });
    assert.equal(t.get('Joe@EXAMPLE.com'), 'user Joe ok');
    assert.equal(t.get('postmaster@other.org'), 'case-sensitive');
    assert.equal(t.get('POSTMASTER@other.org'), undefined);
    assert.equal(t.get('x'), '${1} literal');
    assert.equal(t.get('nothing'), undefined);
  });
  test('negation and if/endif', () => {
    write('r2', 'if /@example\\.com$/\n!/^admin@/ not-admin\nendif\nif !/@example\\.com$/\n/./ other-domain\nendif\n');
    const t = openTable('regexp:r2', { baseDir: dir });
    assert.equal(t.get('joe@example.com'), 'not-admin');
    assert.equal(t.get('admin@example.com'), undefined);
    assert.equal(t.get('joe@other.org'), 'other-domain');
  });
  test('pcre flags x, s, m, A and other delimiters', () => {
    write('p1', '/ ^ab  c [ ]d #comment/x extended\n/a.b/s dotall\n/^two$/m multiline\n|b+|A anchored\n');
    const t = openTable('pcre:p1', { baseDir: dir });
    assert.equal(t.get('abc d'), 'extended');
    assert.equal(t.get('a\nb'), 'dotall');
    assert.equal(t.get('one\ntwo'), 'multiline');
    assert.equal(t.get('bbb'), 'anchored');
    assert.equal(t.get('cbbb'), undefined);
  });
  test('reload after the file changes', () => {
    const p = write('r3', '/a/ old\n');
    const t = openTable('regexp:r3', { baseDir: dir, checkIntervalMs: 0 });
    assert.equal(t.get('a'), 'old');
    writeFileSync(p, '/a/ new\n');
    utimesSync(p, new Date(), new Date(Date.now() + 5000));
    assert.equal(t.get('a'), 'new');
  });
  const bad: Array<{ desc: string; type: string; text: string; message: (p: string) => string }> = [
    { desc: 'no closing delimiter', type: 'regexp', text: '/a/ ok\n/abc ok\n', message: (p) => `regexp map ${p}, line 2: no closing regexp delimiter "/": "/abc ok"` },
    { desc: 'bad regexp', type: 'regexp', text: '/a(/ ok\n', message: (p) => `regexp map ${p}, line 1: bad regular expression "/a(/": /a(/i: Unterminated group` },
    { desc: 'unknown flag', type: 'regexp', text: '/a/s ok\n', message: (p) => `regexp map ${p}, line 1: unknown regexp option "s"` },
    { desc: 'out-of-range $2', type: 'pcre', text: '/(a)/ $2\n', message: (p) => `pcre map ${p}, line 1: out-of-range replacement index "2"` },
    { desc: '$1 in negative rule', type: 'pcre', text: '!/(a)/ $1\n', message: (p) => `pcre map ${p}, line 1: $number found in negative match replacement text: "$1"` },
    { desc: 'no delimiter', type: 'regexp', text: 'abc ok\n', message: (p) => `regexp map ${p}, line 1: regexp pattern must start with a delimiter such as "/": "abc ok"` },
    { desc: 'endif without if', type: 'regexp', text: 'endif\n', message: (p) => `regexp map ${p}, line 1: ENDIF without matching IF` },
    { desc: 'if without endif', type: 'pcre', text: 'if /a/\n/b/ x\n', message: (p) => `pcre map ${p}, line 1: IF has no matching ENDIF` },
  ];
  for (const c of bad) {
    test(`error: ${c.desc}`, () => {
      const p = write('rbad', c.text);
      assert.throws(() => openTable(`${c.type}:${p}`), { message: c.message(p) });
    });
  }
});

describe('hash/btree/lmdb compiled tables and LmdbDict', () => {
  test('compile then look up through every compiled type', () => {
    const p = write('acc', 'Joe@Example.com OK\nexample.org REJECT no thanks\n');
    compileSource(p, () => {});
    for (const type of ['hash', 'btree', 'lmdb']) {
      const t = openTable(`${type}:acc`, { baseDir: dir });
      assert.equal(t.get('joe@example.com'), 'OK');
      assert.equal(t.get('JOE@EXAMPLE.COM'), 'OK');
      assert.equal(t.get('example.org'), 'REJECT no thanks');
      assert.equal(t.get('missing'), undefined);
      t.close();
    }
  });
  test('a reader with the table open sees a recompile atomically, without reopening', async () => {
    const p = write('acc2', 'a 1\nb 2\n');
    compileSource(p, () => {});
    const t = openTable('hash:acc2', { baseDir: dir, checkIntervalMs: 0 });
    assert.equal(t.get('a'), '1');
    writeFileSync(p, 'a 10\nc 3\n');
    compileSource(p, () => {});
    // lmdb-js keeps a reader's snapshot until the current event-loop turn ends.
    await sleep(5);
    assert.equal(t.get('a'), '10');
    assert.equal(t.get('b'), undefined);
    assert.equal(t.get('c'), '3');
    t.close();
  });
  test('a replaced database file (new inode) is reopened', () => {
    const p = write('acc3', 'a 1\n');
    compileSource(p, () => {});
    const t = openTable('hash:acc3', { baseDir: dir, checkIntervalMs: 0 });
    assert.equal(t.get('a'), '1');
    rmSync(p + '.lmdb');
    rmSync(p + '.lmdb-lock', { force: true });
    writeFileSync(p, 'a 2\n');
    compileSource(p, () => {});
    assert.equal(t.get('a'), '2');
    t.close();
  });
  test('LmdbDict put/get/del/iterate, two handles on one file', () => {
    const path = join(dir, 'verify.lmdb');
    const a = LmdbDict.open(path);
    const b = LmdbDict.open(path);
    a.put('x@example.com', '0:1:2:ok');
    a.put('a@example.com', '2:0:3:bad');
    assert.equal(b.get('x@example.com'), '0:1:2:ok');
    assert.deepEqual([...b.entries()], [['a@example.com', '2:0:3:bad'], ['x@example.com', '0:1:2:ok']]);
    assert.equal(b.del('x@example.com'), true);
    assert.equal(b.del('x@example.com'), false);
    assert.equal(a.get('x@example.com'), undefined);
    assert.throws(() => a.put('', 'v'), { message: `${path}: empty key` });
    a.close();
    b.close();
    assert.throws(() => LmdbDict.open(join(dir, 'none.lmdb'), { create: false }), { message: `open database ${join(dir, 'none.lmdb')}: No such file or directory` });
  });
  test('a key with a NUL character is an error naming file and line (fuzzer regression)', () => {
    const p = write('nul', 'a 1\nb\u0000c 2\n');
    assert.throws(() => compileSource(p, () => {}), { message: `${p}, line 2: key contains a NUL character: "b\\0c"` });
    const q = write('long', 'a 1\n' + 'k'.repeat(2000) + ' v\n');
    assert.throws(() => compileSource(q, () => {}), { message: `${q}, line 2: key too long (more than 510 bytes): "${'k'.repeat(40)}..."` });
  });
  test('a hot-key cached lookup sees postmap -d and a recompile on the next turn', async () => {
    const p = write('acc5', 'a 1\nb 2\n');
    compileSource(p, () => {});
    const t = openTable('hash:acc5', { baseDir: dir });
    assert.equal(t.get('a'), '1');
    assert.equal(t.get('zz'), undefined);
    const d = LmdbDict.open(p + '.lmdb');
    d.del('a');
    d.put('zz', 'new');
    d.close();
    await new Promise((r) => setImmediate(r));
    assert.equal(t.get('a'), undefined);
    assert.equal(t.get('zz'), 'new');
    writeFileSync(p, 'a 3\n');
    compileSource(p, () => {});
    await new Promise((r) => setImmediate(r));
    assert.equal(t.get('a'), '3');
    assert.equal(t.get('b'), undefined);
    t.close();
  });
  test('compile leaves no temporary files', () => {
    const p = write('acc4', 'k v\n');
    compileSource(p, () => {});
    assert.ok(existsSync(p + '.lmdb'));
    assert.ok(!existsSync(`${p}.lmdb.tmp.${process.pid}`));
    assert.ok(!existsSync(`${p}.lmdb.tmp.${process.pid}-lock`));
  });
});

describe('TableList', () => {
  test('first table that has the key wins', () => {
    write('l1', 'a from-first\n');
    write('l2', 'a from-second\nb second-only\n');
    const list = TableList.open(['texthash:l1', 'texthash:l2', 'static:fallback'], { baseDir: dir });
    assert.equal(list.get('a'), 'from-first');
    assert.equal(list.get('b'), 'second-only');
    assert.equal(list.get('zzz'), 'fallback');
    const hit = list.find('b');
    assert.ok(hit && !(hit instanceof Promise));
    assert.equal(hit.table.ref, 'texthash:l2');
    assert.equal(new TableList([]).get('a'), undefined);
  });
  test('async tables are awaited in order', async () => {
    const slow: LookupTable = { ref: 'test:slow', type: 'test', get: async (k) => (k === 'x' ? 'async-x' : undefined), close: () => {} };
    const list = new TableList([slow, openTable('inline:{ y=sync-y, x=sync-x }')]);
    assert.equal(await list.get('x'), 'async-x');
    assert.equal(await list.get('y'), 'sync-y');
    assert.equal(await list.get('z'), undefined);
  });
  test('a bad reference fails the whole list', () => {
    assert.throws(() => TableList.open(['static:OK', 'nosuch:x']), { message: /^unsupported dictionary type: nosuch/ });
  });
});
