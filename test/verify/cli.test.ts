// `backstop verify warm|sync|show` against a real primary (SMTP sink on 127.0.0.2), with the
// configuration read from a real main.cf; the cache is the LMDB file address_verify_map names.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { verifyCommand, ago } from '../../src/cli/verify.js';
import { openTable } from '../../src/tables/index.js';
import { startPrimary, scratch, type Primary } from './helpers.js';

let primary: Primary;
let tmp: ReturnType<typeof scratch>;
const T0 = Date.UTC(2026, 10, 24, 19, 0, 0);

before(async () => {
  primary = await startPrimary();
  tmp = scratch();
  writeFileSync(`${tmp.dir}/main.cf`, [
    'myhostname = mx2.backup.test',
    'inet_interfaces = 127.0.0.1',
    `backstop_dns_servers = ${primary.dns.servers}`,
    `data_directory = ${tmp.dir}/data`,
    `queue_directory = ${tmp.dir}/queue`,
    'address_verify_map = btree:$data_directory/verify',
    `address_verify_transport_maps = inline:{ primary.test=smtp:primary.test:${primary.port} }`,
    `backstop_verify_sync_map = texthash:${tmp.dir}/relay_recipients`,
    '',
  ].join('\n'));
  writeFileSync(`${tmp.dir}/relay_recipients`, 'alice@primary.test OK\n@primary.test OK\nghost@primary.test OK\n');
});
after(async () => {
  await primary.close();
  tmp.remove();
});

function io(extra: { stdin?: Readable; now?: () => number; tty?: boolean } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s), configDir: tmp.dir, tty: false, now: () => T0, ...extra } };
}

test('warm - probes each address once, prints the totals; then show prints an entry in words', async () => {
  const x = io({ stdin: Readable.from(['user@primary.test\n# a comment\nnobody@primary.test\n\nuser@primary.test\n']) });
  const code = await verifyCommand(['warm', '-j', '2', '-'], x.io);
  assert.equal(x.err.join(''), '');
  assert.equal(code, 0);
  assert.equal(x.out.join(''), 'verify warm: 3 addresses: 1 deliverable, 1 undeliverable, 0 deferred, 1 cached, 0 in progress elsewhere, 0 errors\n');
  const t = openTable(`btree:${tmp.dir}/data/verify`);
  assert.equal(t.get('user@primary.test'), `0:0:${T0 / 1000}:250 Accepted`);
  t.close();

  const s = io({ now: () => T0 + 3 * 86400_000 });
  assert.equal(await verifyCommand(['show', 'User@primary.test'], s.io), 0);
  assert.equal(s.out.join(''), [
    'address: User@primary.test',
    'status: deliverable',
    'text: 250 Accepted',
    'verified: 2026-11-24 19:00:00 UTC (3 days ago)',
    'next refresh: 2026-12-01 19:00:00 UTC (in 4 days)',
    'expires: 2026-12-25 19:00:00 UTC (in 28 days)',
    'probe: none outstanding',
    `entry: user@primary.test\t0:0:${T0 / 1000}:250 Accepted`,
    '',
  ].join('\n'));
  const n = io();
  assert.equal(await verifyCommand(['show', 'nobody@primary.test'], n.io), 0);
  assert.match(n.out.join(''), /^address: nobody@primary\.test\nstatus: undeliverable\ntext: host mx1\.primary\.test\[127\.0\.0\.2\] said: 550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: User unknown \(in reply to RCPT TO command\)\n/);
  const missing = io();
  assert.equal(await verifyCommand(['show', 'who@primary.test'], missing.io), 1);
  assert.equal(missing.err.join(''), 'verify: who@primary.test: not in cache btree:' + tmp.dir + '/data/verify\n');
});

test('warm FILE with a progress bar on a terminal; -f probes fresh entries again', async () => {
  writeFileSync(`${tmp.dir}/list`, 'alice@primary.test\nbob@primary.test\n');
  const x = io({ tty: true });
  assert.equal(await verifyCommand(['warm', '-f', `${tmp.dir}/list`], x.io), 0);
  assert.equal(x.out.join(''), 'verify warm: 2 addresses: 2 deliverable, 0 undeliverable, 0 deferred, 0 cached, 0 in progress elsewhere, 0 errors\n');
  // A cli-progress bar on the terminal: the total counted from the file, the counts as they come,
  // erased at the end so the summary stands alone.
  const bar = x.err.join('');
  assert.match(bar, /warm \[[=-]+\] 0\/2 \(0%/);
  assert.match(bar, /warm \[[=-]+\] 2\/2 \(100%, eta 0s\): 2 deliverable, 0 undeliverable, 0 deferred, 0 cached/);
  assert.match(bar, /\x1b\[2K$/, 'the bar is erased at the end');
});

test('sync probes the mailboxes of backstop_verify_sync_map, skipping catch-alls', async () => {
  const x = io();
  assert.equal(await verifyCommand(['sync'], x.io), 0);
  assert.equal(x.out.join(''), `verify sync from texthash:${tmp.dir}/relay_recipients: 2 addresses: 0 deliverable, 1 undeliverable, 0 deferred, 1 cached, 0 in progress elsewhere, 0 errors\n`);
});

test('bad usage and bad input get exact errors', async () => {
  const cases: Array<[string[], string]> = [
    [[], 'verify: fatal: usage: backstop verify warm [-j concurrency] [-f] FILE|- | verify sync [-f] | verify show ADDRESS\n'],
    [['frob'], 'verify: fatal: unknown subcommand "frob"; usage: backstop verify warm [-j concurrency] [-f] FILE|- | verify sync [-f] | verify show ADDRESS\n'],
    [['warm'], 'verify: fatal: verify warm needs one FILE (or - for standard input); usage: backstop verify warm [-j concurrency] [-f] FILE|- | verify sync [-f] | verify show ADDRESS\n'],
    [['warm', '-j', '0', 'x'], 'verify: fatal: option -j needs a positive number, got "0"; usage: backstop verify warm [-j concurrency] [-f] FILE|- | verify sync [-f] | verify show ADDRESS\n'],
    [['show'], 'verify: fatal: verify show needs one ADDRESS; usage: backstop verify warm [-j concurrency] [-f] FILE|- | verify sync [-f] | verify show ADDRESS\n'],
    [['show', '-x', 'a@b'], 'verify: fatal: unknown option -x; usage: backstop verify warm [-j concurrency] [-f] FILE|- | verify sync [-f] | verify show ADDRESS\n'],
    [['sync', 'extra'], 'verify: fatal: verify sync takes no arguments (it reads backstop_verify_sync_map); usage: backstop verify warm [-j concurrency] [-f] FILE|- | verify sync [-f] | verify show ADDRESS\n'],
    [['warm', '/nonexistent/list'], 'verify: fatal: open /nonexistent/list: No such file or directory\n'],
  ];
  for (const [argv, message] of cases) {
    const x = io();
    // An unknown option is a usage error of a backstop command: exit 2.
    assert.equal(await verifyCommand(argv, x.io), argv.includes('-x') ? 2 : 1, argv.join(' '));
    assert.equal(x.err.join(''), message);
  }
  const empty = scratch();
  try {
    writeFileSync(`${empty.dir}/main.cf`, `address_verify_map =\ndata_directory = ${empty.dir}\n`);
    const x = { ...io(), };
    x.io.configDir = empty.dir;
    assert.equal(await verifyCommand(['sync'], x.io), 1);
    assert.equal(x.err.join(''), 'verify: fatal: backstop_verify_sync_map is empty: name the table of addresses to verify, e.g. hash:/etc/backstop/relay_recipients\n');
  } finally {
    empty.remove();
  }
});

test('ago() words', () => {
  const cases: Array<[number, string]> = [[0, 'now'], [1, 'in 1 second'], [-120, '2 minutes ago'], [3 * 3600, 'in 3 hours'], [-86400 * 31, '31 days ago']];
  for (const [d, s] of cases) assert.equal(ago(d), s);
});
