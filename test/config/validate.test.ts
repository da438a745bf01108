import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, validateConfig, formatDiagnostic } from '../../src/config/index.js';
import { runCli } from '../helpers/cli.js';

function withConfig(mainCf: string, masterCf?: string): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  writeFileSync(join(dir, 'main.cf'), mainCf);
  if (masterCf !== undefined) writeFileSync(join(dir, 'master.cf'), masterCf);
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

function problems(mainCf: string, masterCf?: string): string[] {
  const c = withConfig(mainCf, masterCf);
  try {
    const loaded = loadConfig(c.dir);
    return validateConfig(loaded, {
      tableTypes: ['cidr', 'hash', 'btree'],
      restrictions: (_p, els) => els.filter((e) => e.startsWith('bogus')).map((e) => `unknown restriction: "${e}"`),
    }).map((d) => formatDiagnostic(d).replace(c.dir, 'CONFIG'));
  } finally {
    c.done();
  }
}

const cases: { desc: string; mainCf: string; expected: string[] }[] = [
  { desc: 'a valid file', mainCf: 'smtpd_timeout = 60s\nmyhostname = a.test\n', expected: [] },
  { desc: 'unknown parameter is a warning', mainCf: 'x = 1\nfoo_bar = baz\n',
    expected: ['warning: CONFIG/main.cf, line 1: unused parameter: x=1', 'warning: CONFIG/main.cf, line 2: unused parameter: foo_bar=baz'] },
  { desc: 'a parameter used as $name is not unused', mainCf: 'my_list = a.test\nrelay_domains = $my_list\n', expected: [] },
  { desc: 'bad time', mainCf: '\nsmtpd_timeout = 10x\n',
    expected: ['error: CONFIG/main.cf, line 2: parameter smtpd_timeout: bad value "10x": expected a time value: a number with optional unit s, m, h, d or w'] },
  { desc: 'bad integer', mainCf: 'smtpd_recipient_limit = many\n',
    expected: ['error: CONFIG/main.cf, line 1: parameter smtpd_recipient_limit: bad value "many": expected an integer'] },
  { desc: 'out of range', mainCf: 'smtpd_recipient_limit = 0\n',
    expected: ['error: CONFIG/main.cf, line 1: parameter smtpd_recipient_limit: bad value "0": expected a value >= 1'] },
  { desc: 'bad boolean', mainCf: 'disable_vrfy_command = maybe\n',
    expected: ['error: CONFIG/main.cf, line 1: parameter disable_vrfy_command: bad value "maybe": expected yes or no'] },
  { desc: 'reply code outside 4xx/5xx', mainCf: 'unverified_recipient_reject_code = 250\n',
    expected: ['error: CONFIG/main.cf, line 1: parameter unverified_recipient_reject_code: bad value "250": expected an SMTP reply code in the range 400-599'] },
  { desc: 'unusual reply code is a warning', mainCf: 'unverified_recipient_reject_code = 577\n',
    expected: ['warning: CONFIG/main.cf, line 1: parameter unverified_recipient_reject_code: 577 is not a standard SMTP reply code (usual: 550 or 554)'] },
  { desc: 'unknown table type', mainCf: 'transport_maps = nosuch:/etc/x\n',
    expected: ['error: CONFIG/main.cf, line 1: parameter transport_maps: unsupported dictionary type: nosuch (known: cidr, hash, btree)'] },
  { desc: 'unknown restriction', mainCf: 'smtpd_recipient_restrictions = permit_mynetworks,\n  bogus_check\n',
    expected: ['error: CONFIG/main.cf, line 1: parameter smtpd_recipient_restrictions: unknown restriction: "bogus_check"'] },
  { desc: 'value not in the legal set', mainCf: 'smtpd_tls_security_level = sometimes\n',
    expected: ['error: CONFIG/main.cf, line 1: parameter smtpd_tls_security_level: bad value "sometimes": expected one of: none, may, encrypt'] },
  { desc: 'recursion', mainCf: 'myhostname = $myorigin\nmyorigin = $myhostname\n',
    expected: [
      'error: CONFIG/main.cf, line 1: parameter myhostname: bad value "$myorigin": recursive parameter reference: $myhostname -> $myorigin -> $myhostname',
      'error: CONFIG/main.cf, line 2: parameter myorigin: bad value "$myhostname": recursive parameter reference: $myorigin -> $myhostname -> $myorigin',
    ] },
];
for (const c of cases) {
  test(`validate: ${c.desc}`, () => {
    assert.deepEqual(problems(c.mainCf), c.expected);
  });
}

test('validate: master.cf -o overrides are checked with the master.cf line', () => {
  assert.deepEqual(problems('', '127.0.0.1:2525 inet n - n - - smtpd\n  -o smtpd_timeout=soon\n'), [
    'error: CONFIG/master.cf, line 1: parameter smtpd_timeout: bad value "soon": expected a time value: a number with optional unit s, m, h, d or w',
  ]);
});

test('backstop start refuses to start on errors and binds nothing', async () => {
  const c = withConfig('smtpd_timeout = 10x\nqueue_directory = spool\ndata_directory = data\n', '127.0.0.1:0 inet n - n - - smtpd\n');
  try {
    const r = await runCli(['start', '-c', c.dir], { timeoutMs: 20_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error: .*main\.cf, line 1: parameter smtpd_timeout: bad value "10x"/);
    assert.match(r.stderr, /fatal: configuration errors; not started/);
  } finally {
    c.done();
  }
});
