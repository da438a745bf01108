// `backstop check`: each backup-MX lint, the load errors with file and line, and the exit status.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkCommand } from '../../../src/cli/check.js';

async function check(mainCf: string): Promise<{ code: number; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  try {
    // The configuration's folders stay in the test's own directory (never /var/lib/backstop).
    writeFileSync(join(dir, 'main.cf'), `${mainCf}${mainCf.endsWith('\n') ? '' : '\n'}queue_directory = ${dir}/spool\ndata_directory = ${dir}/data\n`);
    let out = '';
    const code = await checkCommand(['-c', dir], { stdout: (s) => { out += s; }, stderr: (s) => { out += s; }, configDir: dir });
    return { code, out: out.split(dir).join('DIR') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const GOOD = `permit_mx_backup_networks = 127.0.0.2/32
smtpd_relay_restrictions = permit_mynetworks, reject_unverified_recipient, permit_mx_backup, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject_unverified_recipient, permit_mx_backup, reject_unauth_destination
`;

test('a good backup-MX configuration: no output, exit 0', async () => {
  assert.deepEqual(await check(GOOD), { code: 0, out: '' });
});

const cases: Array<{ desc: string; mainCf: string; code: number; want: RegExp }> = [
  { desc: 'anything after permit is never reached', code: 0,
    mainCf: GOOD + 'smtpd_sender_restrictions = permit, reject_non_fqdn_sender\n',
    want: /warning: DIR\/main\.cf, line 4: smtpd_sender_restrictions: restriction "reject_non_fqdn_sender" is never reached: "permit" before it permits every request/ },
  { desc: 'permit_mx_backup with empty permit_mx_backup_networks', code: 0,
    mainCf: GOOD.replace('permit_mx_backup_networks = 127.0.0.2/32', 'permit_mx_backup_networks ='),
    want: /warning: DIR\/main\.cf, line 2: permit_mx_backup is used with an empty permit_mx_backup_networks/ },
  { desc: 'permit_mx_backup without recipient validation (backscatter)', code: 0,
    mainCf: 'permit_mx_backup_networks = 127.0.0.2\nsmtpd_relay_restrictions = permit_mx_backup, reject_unauth_destination\nsmtpd_recipient_restrictions = permit_mx_backup, reject_unauth_destination\n',
    want: /warning: DIR\/main\.cf, line 3: smtpd_recipient_restrictions: permit_mx_backup without reject_unverified_recipient or reject_unlisted_recipient before it/ },
  { desc: 'policy service on the primary network without default_action', code: 0,
    mainCf: GOOD.replace('127.0.0.2/32', '127.0.0.0/24') + 'smtpd_end_of_data_restrictions = check_policy_service inet:127.0.0.2:10000\n',
    want: /warning: DIR\/main\.cf, line 4: smtpd_end_of_data_restrictions: check_policy_service inet:127\.0\.0\.2:10000 lives in permit_mx_backup_networks .* every message gets "451 4\.3\.5 Server configuration problem"; use \{ inet:127\.0\.0\.2:10000, default_action=DUNNO \}/ },
  { desc: 'no reject at all', code: 1,
    mainCf: 'smtpd_relay_restrictions = permit_mynetworks\nsmtpd_recipient_restrictions = permit_mynetworks, permit\n',
    want: /error: DIR\/main\.cf, line 2: in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: reject, defer, defer_if_permit, reject_unauth_destination, defer_unauth_destination/ },
  { desc: 'unusual reply code', code: 0,
    mainCf: GOOD + 'unverified_recipient_reject_code = 577\n',
    want: /warning: DIR\/main\.cf, line 4: parameter unverified_recipient_reject_code: 577 is not a standard SMTP reply code/ },
  { desc: 'unknown restriction name', code: 1,
    mainCf: GOOD + 'smtpd_client_restrictions = permit_mynetwork\n',
    want: /error: DIR\/main\.cf, line 4: parameter smtpd_client_restrictions: unknown smtpd restriction: "permit_mynetwork"/ },
  { desc: 'missing table file', code: 1,
    mainCf: GOOD + 'smtpd_client_restrictions = check_client_access cidr:/nonexistent/access\n',
    want: /error: DIR\/main\.cf, line 4: parameter smtpd_client_restrictions: check_client_access cidr:\/nonexistent\/access: .*No such file/ },
  { desc: 'missing relay_recipient_maps table', code: 1,
    mainCf: GOOD + 'relay_recipient_maps = texthash:/nonexistent/rr\n',
    want: /error: DIR\/main\.cf, line 4: parameter relay_recipient_maps: .*No such file/ },
];
for (const c of cases) {
  test(c.desc, async () => {
    const r = await check(c.mainCf);
    assert.match(r.out, c.want, r.out);
    assert.equal(r.code, c.code, r.out);
  });
}

test('bad usage', async () => {
  let err = '';
  const r = await check(GOOD).then(() => checkCommand(['-x'], { stdout: () => {}, stderr: (s) => { err += s; }, configDir: '.' }));
  assert.equal(r, 2);
  assert.equal(err, "backstop check: unknown option -x (see 'backstop check --help')\n");
});
