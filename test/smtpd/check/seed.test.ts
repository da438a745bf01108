// The seed's restriction lists (tutorial 000_a5c2b4a871e87311), with its tables, DNS lists and
// quota-status policy service rewritten to loopback: they load and behave as Postfix documents,
// including the trap the tutorial falls into (permit_mx_backup commented out in
// smtpd_relay_restrictions) and the policy service that can never be reached.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config, loadConfig } from '../../../src/config/index.js';
import { Resolver } from '../../../src/dns/index.js';
import { Maillog } from '../../../src/log/index.js';
import { createRestrictionEngine, type RestrictionEngine } from '../../../src/smtpd/check/index.js';
import { checkConfig } from '../../../src/check/index.js';
import { startDnsServer, type TestDnsServer } from '../../helpers/dnsserver.js';
import { startSink, type Sink } from '../../helpers/sink.js';
import { session, show, ProbingVerifier } from './harness.js';
import { seedMainCf, writeSeedTables, SEED_ZONE, startPolicy } from './seedfixture.js';

let dir: string;
let dns: TestDnsServer;
let resolver: Resolver;
let sink: Sink;
let policy: Awaited<ReturnType<typeof startPolicy>>;
const engines: RestrictionEngine[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  writeSeedTables(dir);
  dns = await startDnsServer(SEED_ZONE);
  resolver = new Resolver({ servers: [dns.servers], timeoutMs: 3000 });
  sink = await startSink({ host: '127.0.0.2', users: ['django@nausch.org', 'postmaster@nausch.org'] });
  policy = await startPolicy();
});
after(async () => {
  for (const e of engines) await e.close();
  await policy.close();
  await sink.close();
  resolver.close();
  await dns.close();
  rmSync(dir, { recursive: true, force: true });
});

function engine(relayLine: boolean): RestrictionEngine {
  const log = new Maillog();
  log.open(undefined, { quiet: true });
  const e = createRestrictionEngine(Config.fromText(seedMainCf(dir, policy.port, relayLine), dir), {
    dns: resolver, verifier: new ProbingVerifier('127.0.0.2', sink.port), myAddresses: () => ['127.0.0.1'], log: log.logger('smtpd'),
  });
  engines.push(e);
  return e;
}

const seedSession = (over: Parameters<typeof session>[0]) => session({ clientName: 'unknown', reverseClientName: 'unknown', helo: 'ich', sender: 'swat@client.test', ...over });

test('as written (relay line commented out): backup-MX mail gets Relay access denied', async () => {
  const e = engine(false);
  assert.equal(show(await e.check(seedSession({ recipient: 'django@nausch.org' }))), '554 5.7.1 <django@nausch.org>: Relay access denied');
});

test('with permit_mx_backup activated in smtpd_relay_restrictions, as the prose says', async () => {
  const e = engine(true);
  const cases: Array<{ desc: string; over: Parameters<typeof session>[0]; want: string | RegExp }> = [
    { desc: 'verified recipient of the backed-up domain', over: { recipient: 'django@nausch.org' }, want: 'accept' },
    { desc: 'unknown recipient: 577 (the seed) with DSN 5.1.1', over: { recipient: 'peer.heinlein@nausch.org' }, want: /^577 5\.1\.1 <peer\.heinlein@nausch\.org>: Recipient address rejected: undeliverable address: host 127\.0\.0\.2\[127\.0\.0\.2\] said: 550/ },
    { desc: 'a domain we do not back up', over: { recipient: 'x@other.test' }, want: '554 5.7.1 <x@other.test>: Relay access denied' },
    { desc: 'role account whitelist never opens the relay', over: { recipient: 'postmaster@other.test' }, want: '554 5.7.1 <postmaster@other.test>: Relay access denied' },
    { desc: 'role account whitelist of the backed-up domain', over: { recipient: 'postmaster@nausch.org' }, want: 'accept' },
    { desc: 'cidr client blacklist', over: { recipient: 'django@nausch.org', clientAddress: '127.0.0.66' }, want: '554 5.7.1 <unknown[127.0.0.66]>: Client host rejected: You are blacklisted' },
    { desc: 'helo blacklist', over: { recipient: 'django@nausch.org', helo: 'localhost' }, want: '554 5.7.1 <localhost>: Helo command rejected: You are not localhost' },
    { desc: 'sender blacklist', over: { recipient: 'django@nausch.org', sender: 'spam@bad.example' }, want: '554 5.7.1 <spam@bad.example>: Sender address rejected: Access denied' },
    { desc: 'recipient blacklist', over: { recipient: 'closed@nausch.org' }, want: '554 5.7.1 <closed@nausch.org>: Recipient address rejected: Mailbox closed' },
    { desc: 'zen.spamhaus.org', over: { recipient: 'django@nausch.org', clientAddress: '127.0.0.2' }, want: '554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/127.0.0.2' },
    { desc: 'bl.spamcop.net', over: { recipient: 'django@nausch.org', clientAddress: '127.0.0.4' }, want: '554 5.7.1 Service unavailable; Client host [127.0.0.4] blocked using bl.spamcop.net' },
    { desc: 'multi.uribl.com', over: { recipient: 'django@nausch.org', clientName: 'spam.example' }, want: '554 5.7.1 Service unavailable; Client host [spam.example] blocked using multi.uribl.com' },
    { desc: 'SASL users may relay', over: { recipient: 'x@other.test', saslUsername: 'michael' }, want: 'accept' },
    { desc: 'mynetworks may relay', over: { recipient: 'x@other.test', clientAddress: '127.0.0.254' }, want: 'accept' },
  ];
  for (const c of cases) {
    const got = show(await e.check(seedSession(c.over)));
    if (typeof c.want === 'string') assert.equal(got, c.want, c.desc);
    else assert.match(got, c.want, c.desc);
  }
  assert.equal(policy.requests, 0, 'the quota-status policy service after permit_mx_backup + reject_unauth_destination is never reached');
});

test('backstop check reports the seed traps with file and line', () => {
  const cfg = mkdtempSync(join(tmpdir(), 'backstop-'));
  try {
    writeFileSync(join(cfg, 'main.cf'), seedMainCf(dir, policy.port, false));
    const d = checkConfig(loadConfig(cfg)).map((x) => `${x.severity}: ${x.line}: ${x.message}`);
    const lines = seedMainCf(dir, policy.port, false).split('\n');
    const relayLine = lines.lastIndexOf('           reject_unauth_destination') + 1;
    const policyLine = lines.findIndex((l) => l.includes('check_policy_service')) + 1;
    assert.ok(d.some((m) => m.startsWith(`warning: ${relayLine}: smtpd_relay_restrictions has reject_unauth_destination but no permit_mx_backup`)), d.join('\n'));
    assert.ok(d.some((m) => m.startsWith(`warning: ${policyLine}: smtpd_recipient_restrictions: restriction "check_policy_service inet:127.0.0.1:${policy.port}" is never reached: "permit_mx_backup" has already permitted`)), d.join('\n'));
    assert.ok(d.some((m) => /^warning: 5: parameter unverified_recipient_reject_code: 577 is not a standard SMTP reply code/.test(m)), d.join('\n'));
    assert.ok(!d.some((m) => m.startsWith('error')), d.join('\n'));
  } finally {
    rmSync(cfg, { recursive: true, force: true });
  }
});
