import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Config, parseMainCf, expand, parseTime, splitList, parseMasterCf, parseListen } from '../../src/config/index.js';

test('main.cf: comments, continuation lines, last definition wins', () => {
  const text = [
    '# comment',
    'myhostname = mx2.backup.test',
    'smtpd_recipient_restrictions =',
    '# a comment inside a continued value',
    '           check_recipient_access btree:/etc/postfix/access_recipient-rfc',
    '    # indented comment',
    '           permit_mynetworks',
    '',
    '           reject_unauth_destination',
    'myhostname = mx3.backup.test',
  ].join('\n');
  const { entries, diagnostics } = parseMainCf(text, '/c/main.cf');
  assert.deepEqual(diagnostics, []);
  assert.equal(entries.get('myhostname')?.value, 'mx3.backup.test');
  assert.equal(entries.get('myhostname')?.line, 10);
  assert.equal(
    entries.get('smtpd_recipient_restrictions')?.value,
    'check_recipient_access btree:/etc/postfix/access_recipient-rfc permit_mynetworks reject_unauth_destination',
  );
  assert.equal(entries.get('smtpd_recipient_restrictions')?.line, 3);
});

test('main.cf: a line without = is an error naming file and line', () => {
  const { diagnostics } = parseMainCf('a = b\nthis is wrong\n', '/c/main.cf');
  assert.deepEqual(diagnostics, [{ severity: 'error', file: '/c/main.cf', line: 2, message: `missing '=' after attribute name: "this"` }]);
});

test('main.cf: continuation before any parameter is a warning', () => {
  const { diagnostics } = parseMainCf('   stray\na = b\n', '/c/main.cf');
  assert.equal(diagnostics[0].severity, 'warning');
  assert.equal(diagnostics[0].line, 1);
});

const cases: { desc: string; value: string; vars: Record<string, string>; expected: string }[] = [
  { desc: '$name', value: '$a x', vars: { a: '1' }, expected: '1 x' },
  { desc: '${name}', value: '${a}b', vars: { a: '1' }, expected: '1b' },
  { desc: '$(name)', value: '$(a)b', vars: { a: '1' }, expected: '1b' },
  { desc: 'chain', value: '$a', vars: { a: '$b', b: '${c}!', c: 'z' }, expected: 'z!' },
  { desc: 'undefined is empty', value: '[$nope]', vars: {}, expected: '[]' },
  { desc: '${name?value} defined', value: '${a?yes}', vars: { a: '1' }, expected: 'yes' },
  { desc: '${name?value} empty', value: '${a?yes}', vars: { a: '' }, expected: '' },
  { desc: '${name:value} undefined', value: '${a:dflt}', vars: {}, expected: 'dflt' },
  { desc: '${name:value} defined', value: '${a:dflt}', vars: { a: 'x' }, expected: '' },
  { desc: 'if-then-else, false', value: '${stress?{10}:{300}}s', vars: {}, expected: '300s' },
  { desc: 'if-then-else, true', value: '${stress?{10}:{300}}s', vars: { stress: 'yes' }, expected: '10s' },
  { desc: '$$ is a dollar', value: 'a$$b', vars: {}, expected: 'a$b' },
  { desc: 'text with $name inside ?', value: '${r?; $r}', vars: { r: 'why' }, expected: '; why' },
];
for (const c of cases) {
  test(`expansion: ${c.desc}`, () => {
    assert.equal(expand(c.value, (n) => c.vars[n]), c.expected);
  });
}

test('expansion: recursion is an error, not a hang', () => {
  const cfg = Config.fromText('a = $b\nb = x $a\n', '/c');
  assert.throws(() => cfg.str('a'), /\/c\/main\.cf, line 1: parameter a: bad value "\$b": recursive parameter reference: \$a -> \$b -> \$a/);
});

test('time values: units and the default unit of a bare number', () => {
  assert.deepEqual(parseTime('7d'), { ok: true, value: 604800 });
  assert.deepEqual(parseTime('3', 'h'), { ok: true, value: 10800 });
  assert.deepEqual(parseTime('2w'), { ok: true, value: 1209600 });
  assert.equal(parseTime('7x').ok, false);
  const cfg = Config.fromText('address_verify_negative_refresh_time = 2\nsmtpd_timeout = 5m\n');
  assert.equal(cfg.time('address_verify_negative_refresh_time'), 7200, 'bare number uses the default unit h');
  assert.equal(cfg.time('smtpd_timeout'), 300);
  assert.equal(cfg.time('address_verify_positive_refresh_time'), 7 * 86400);
});

test('lists split on commas and white space; { } groups stay whole', () => {
  assert.deepEqual(splitList('a, b  c,,d'), ['a', 'b', 'c', 'd']);
  assert.deepEqual(splitList('check_policy_service { inet:127.0.0.1:9, default_action=DUNNO }, permit'), [
    'check_policy_service', '{ inet:127.0.0.1:9, default_action=DUNNO }', 'permit',
  ]);
  assert.deepEqual(splitList('inline:{ a=1, b=2 } x'), ['inline:{ a=1, b=2 }', 'x']);
});

test('typed getters: bool, int, size, defaults, overrides', () => {
  const cfg = Config.fromText('disable_vrfy_command = yes\nmessage_size_limit = 1000\n');
  assert.equal(cfg.bool('disable_vrfy_command'), true);
  assert.equal(cfg.size('message_size_limit'), 1000);
  assert.equal(cfg.int('smtpd_recipient_limit'), 1000);
  assert.equal(cfg.str('address_verify_sender'), 'double-bounce');
  assert.equal(cfg.int('smtp_destination_concurrency_limit'), 20);
  const svc = cfg.withOverrides({ message_size_limit: '50' });
  assert.equal(svc.size('message_size_limit'), 50);
  assert.equal(cfg.size('message_size_limit'), 1000);
  assert.throws(() => Config.fromText('smtpd_recipient_limit = lots\n', '/c').int('smtpd_recipient_limit'), /line 1: parameter smtpd_recipient_limit: bad value "lots": expected an integer/);
});

test('master.cf: inet smtpd listeners with -o overrides; other lines noted', () => {
  const text = [
    '127.0.0.1:2525      inet  n       -       n       -       -       smtpd',
    '  -o smtpd_tls_security_level=may',
    '  -o { message_size_limit = 2000 }',
    '[::1]:2525 inet n - n - - smtpd',
    'smtp inet n - n - - smtpd',
    '2526 inet n - n - - smtpd',
    'qmgr      unix  n       -       n       300     1       qmgr',
    'bad:port:x inet n - n - - smtpd',
    'short line',
  ].join('\n');
  const { smtpd, diagnostics } = parseMasterCf(text, '/c/master.cf');
  assert.equal(smtpd.length, 4);
  assert.deepEqual({ host: smtpd[0].host, port: smtpd[0].port, overrides: smtpd[0].overrides }, {
    host: '127.0.0.1', port: 2525, overrides: { smtpd_tls_security_level: 'may', message_size_limit: '2000' },
  });
  assert.deepEqual([smtpd[1].host, smtpd[1].port], ['::1', 2525]);
  assert.deepEqual([smtpd[2].host, smtpd[2].port], [undefined, 25]);
  assert.deepEqual([smtpd[3].host, smtpd[3].port], [undefined, 2526]);
  assert.equal(diagnostics.find((d) => d.line === 7)?.severity, 'note');
  assert.match(diagnostics.find((d) => d.line === 8)!.message, /bad inet service "bad:port:x"/);
  assert.match(diagnostics.find((d) => d.line === 9)!.message, /bad field count/);
  assert.deepEqual(parseListen('submission'), { port: 587 });
  assert.equal(parseListen('70000'), undefined);
});
