// postconf through the real CLI (a child process), on real files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, repoRoot } from '../helpers/cli.js';

function configDir(mainCf: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  writeFileSync(join(dir, 'main.cf'), mainCf);
  return dir;
}

test('postconf -d prints Postfix defaults', async () => {
  const dir = configDir('');
  try {
    const r = await runCli(['postconf', '-c', dir, '-d', 'address_verify_positive_refresh_time', 'maximal_queue_lifetime',
      'unverified_recipient_reject_code', 'double_bounce_sender', 'address_verify_sender', 'smtpd_relay_restrictions']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, [
      'address_verify_positive_refresh_time = 7d',
      'maximal_queue_lifetime = 5d',
      'unverified_recipient_reject_code = 450',
      'double_bounce_sender = double-bounce',
      'address_verify_sender = $double_bounce_sender',
      'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination',
      '',
    ].join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('postconf -d without names prints every parameter, sorted', async () => {
  const dir = configDir('');
  try {
    const r = await runCli(['postconf', '-c', dir, '-d']);
    assert.equal(r.code, 0);
    const names = r.stdout.trim().split('\n').map((l) => l.split(' = ')[0].replace(/ =$/, ''));
    assert.ok(names.length > 150, `only ${names.length} parameters`);
    assert.deepEqual(names, [...names].sort((a, b) => a.localeCompare(b)));
    assert.ok(r.stdout.includes('\nqueue_run_delay = 300s\n'));
    assert.ok(r.stdout.includes('\nsmtpd_client_restrictions =\n'), 'empty values print as "name ="');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('postconf -n prints the seed fragments; -x expands; names select', async () => {
  const dir = join(repoRoot, 'test', 'fixtures', 'seed');
  const r = await runCli(['postconf', '-c', dir, '-n']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, [
    'address_verify_map = btree:/var/spool/postfix/data/verify',
    'permit_mx_backup_networks = 88.217.171.167/32',
    'smtpd_recipient_restrictions = check_recipient_access btree:/etc/postfix/access_recipient-rfc check_client_access cidr:/etc/postfix/access_client check_helo_access btree:/etc/postfix/access_helo check_sender_access btree:/etc/postfix/access_sender check_recipient_access btree:/etc/postfix/access_recipient permit_sasl_authenticated permit_mynetworks reject_rbl_client zen.spamhaus.org reject_rbl_client ix.dnsbl.manitu.net reject_rbl_client bl.spamcop.net reject_rhsbl_client multi.uribl.com reject_unverified_recipient permit_mx_backup reject_unauth_destination check_policy_service inet:10.0.0.77:10000 permit',
    'smtpd_relay_restrictions = permit_sasl_authenticated permit_mynetworks reject_unauth_destination',
    'unverified_recipient_reject_code = 577',
    '',
  ].join('\n'));
  assert.equal(r.stderr, '');
});

test('postconf -x expands $name; unknown names warn', async () => {
  const dir = configDir('myhostname = mx2.backup.test\nmyorigin = $myhostname\nfoo = bar\n');
  try {
    const r = await runCli(['postconf', '-c', dir, '-x', 'myorigin', 'address_verify_sender', 'nosuchparam']);
    assert.equal(r.stdout, 'myorigin = mx2.backup.test\naddress_verify_sender = double-bounce\n');
    assert.equal(r.stderr, 'postconf: warning: nosuchparam: unknown parameter\n');
    const n = await runCli(['postconf', '-c', dir, '-n']);
    assert.equal(n.stdout, 'foo = bar\nmyhostname = mx2.backup.test\nmyorigin = $myhostname\n');
    assert.equal(n.stderr, `postconf: warning: ${join(dir, 'main.cf')}: unused parameter: foo=bar\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
