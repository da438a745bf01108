// The restriction engine against a real DNS server on loopback, real table files and a real
// verifier probing an SMTP sink: one case per restriction, per access(5) action, per
// open-relay trick, and the evaluation semantics (delay_reject, defer_if_*, warn_if_reject).

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, session, show, ProbingVerifier, type Harness } from './harness.js';
import { startSink, type Sink } from '../../helpers/sink.js';

let h: Harness;
before(async () => { h = await startHarness(); });
after(async () => { await h.close(); });

const BACKUP = `
mydestination = mx2.backup.test
mynetworks = 127.0.0.254/32
relay_domains = relay.test
permit_mx_backup_networks = 127.0.0.2/32
smtpd_relay_restrictions = permit_mynetworks, permit_mx_backup, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, permit_mx_backup, reject_unauth_destination, permit
`;

describe('permit_mx_backup (§1.1)', () => {
  const cases: Array<{ desc: string; rcpt: string; extra?: string; want: string | RegExp }> = [
    { desc: 'backup for a domain whose primary is in permit_mx_backup_networks', rcpt: 'user@primary.test', want: 'accept' },
    { desc: 'not listed in MX', rcpt: 'x@other.test', want: '554 5.7.1 <x@other.test>: Relay access denied' },
    { desc: 'listed, primary outside permit_mx_backup_networks', rcpt: 'x@elsewhere.test', want: '554 5.7.1 <x@elsewhere.test>: Relay access denied' },
    { desc: 'listed, empty permit_mx_backup_networks', rcpt: 'x@elsewhere.test', extra: 'permit_mx_backup_networks =', want: 'accept' },
    { desc: 'NXDOMAIN', rcpt: 'x@nx.test', want: '554 5.7.1 <x@nx.test>: Relay access denied' },
    { desc: 'we are the primary', rcpt: 'x@weareprimary.test', want: '554 5.7.1 <x@weareprimary.test>: Relay access denied' },
    { desc: 'we are among the most preferred', rcpt: 'x@equal.test', want: '554 5.7.1 <x@equal.test>: Relay access denied' },
    { desc: 'null MX', rcpt: 'x@nullmx.test', want: '554 5.7.1 <x@nullmx.test>: Relay access denied' },
    { desc: 'no MX, A only: no fallback to A', rcpt: 'x@aonly.test', want: '554 5.7.1 <x@aonly.test>: Relay access denied' },
    { desc: 'MX lookup times out: 450, never 554', rcpt: 'x@slowmx.test', want: /^450 4\.4\.4 <x@slowmx\.test>: Recipient address rejected: Unable to look up mail exchanger information: / },
    { desc: 'MX lookup SERVFAIL: 450', rcpt: 'x@failmx.test', want: /^450 4\.4\.4 <x@failmx\.test>: Recipient address rejected: Unable to look up mail exchanger information: / },
    { desc: 'primary host does not resolve', rcpt: 'x@brokenprimary.test', want: '450 4.4.4 <x@brokenprimary.test>: Recipient address rejected: Unable to look up mail exchanger host gone.test: Host not found' },
    { desc: 'relay_domains is permitted', rcpt: 'x@relay.test', want: 'accept' },
    { desc: 'mydestination is permitted', rcpt: 'x@mx2.backup.test', want: 'accept' },
    { desc: 'our address literal is local', rcpt: 'x@[127.0.0.1]', want: 'accept' },
    { desc: 'another address literal is not', rcpt: 'x@[127.0.0.3]', want: '554 5.7.1 <x@[127.0.0.3]>: Relay access denied' },
    { desc: 'proxy_interfaces counts as ours', rcpt: 'x@elsewhere.test', extra: 'proxy_interfaces = 127.0.0.9\npermit_mx_backup_networks =', want: 'accept' },
  ];
  for (const c of cases) {
    test(c.desc, async () => {
      const e = h.engine(BACKUP + (c.extra ?? ''));
      const got = show(await e.check(session({ recipient: c.rcpt })));
      if (typeof c.want === 'string') assert.equal(got, c.want);
      else assert.match(got, c.want);
    });
  }
  test('we are listed only through our addresses (myAddresses)', async () => {
    const e = h.engine(BACKUP.replace('mydestination = mx2.backup.test', 'mydestination ='), { myAddresses: ['127.0.0.77'] });
    assert.equal(show(await e.check(session({ recipient: 'x@primary.test' }))), '554 5.7.1 <x@primary.test>: Relay access denied');
  });
  test('a DNS temp failure defers the later reject, but a permit still wins', async () => {
    const e = h.engine(BACKUP.replace(/smtpd_recipient_restrictions.*/, 'smtpd_recipient_restrictions = permit_mx_backup, permit').replace(/smtpd_relay_restrictions.*/, 'smtpd_relay_restrictions = permit_mx_backup, permit'));
    assert.equal(show(await e.check(session({ recipient: 'x@slowmx.test' }))), 'accept');
  });
});

describe('open-relay tricks: routed addresses are never relayed', () => {
  const tricks = [
    'a%other.test@mx2.backup.test', 'other.test!a@mx2.backup.test', '@mx2.backup.test:a@other.test', '"a@other.test"@mx2.backup.test',
    'a%other.test@relay.test', 'other.test!a@relay.test', '"a@other.test"@relay.test', '@x.test:a@relay.test',
    'a%other.test@primary.test', 'other.test!a@primary.test', '"a@other.test"@primary.test', '@x.test:a@primary.test',
    'a%other.test@[127.0.0.1]',
  ];
  for (const rcpt of tricks) {
    test(rcpt, async () => {
      const e = h.engine(BACKUP);
      assert.equal(show(await e.check(session({ recipient: rcpt }))), `554 5.7.1 <${rcpt}>: Relay access denied`);
    });
  }
  test('allow_percent_hack = no keeps % as part of the local name (still routed for relay)', async () => {
    const e = h.engine(BACKUP + 'allow_percent_hack = no\n');
    assert.equal(show(await e.check(session({ recipient: 'a%other.test@relay.test' }))), '554 5.7.1 <a%other.test@relay.test>: Relay access denied');
    assert.equal(show(await e.check(session({ recipient: 'a%b@mx2.backup.test' }))), 'accept');
  });
  test('a local % address that stays local is accepted', async () => {
    const e = h.engine(BACKUP);
    assert.equal(show(await e.check(session({ recipient: 'a%mx2.backup.test@mx2.backup.test' }))), 'accept');
  });
});

describe('relay and recipient restrictions', () => {
  test('the seed trap: permit_mx_backup only in recipient restrictions → Relay access denied', async () => {
    const e = h.engine(BACKUP.replace(/smtpd_relay_restrictions.*/, 'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination'));
    assert.equal(show(await e.check(session({ recipient: 'user@primary.test' }))), '554 5.7.1 <user@primary.test>: Relay access denied');
  });
  test('relay restrictions permit, recipient restrictions still reject: both must pass', async () => {
    const e = h.engine(BACKUP.replace(/smtpd_recipient_restrictions.*/, 'smtpd_recipient_restrictions = reject'));
    assert.equal(show(await e.check(session({ recipient: 'user@primary.test' }))), '554 5.7.1 <user@primary.test>: Recipient address rejected: Access denied');
  });
  test('default relay restrictions: defer_unauth_destination', async () => {
    const e = h.engine('mynetworks = 127.0.0.254/32\n');
    assert.equal(show(await e.check(session({ recipient: 'x@other.test' }))), '454 4.7.1 <x@other.test>: Relay access denied');
  });
  test('relay_domains_reject_code', async () => {
    const e = h.engine(BACKUP + 'relay_domains_reject_code = 550\n');
    assert.equal(show(await e.check(session({ recipient: 'x@other.test' }))), '550 5.7.1 <x@other.test>: Relay access denied');
  });
  test('permit_mynetworks and permit_sasl_authenticated', async () => {
    const e = h.engine(BACKUP + 'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination\nsmtpd_recipient_restrictions = permit\n');
    assert.equal(show(await e.check(session({ recipient: 'x@other.test', clientAddress: '127.0.0.254' }))), 'accept');
    assert.equal(show(await e.check(session({ recipient: 'x@other.test', saslUsername: 'alice' }))), 'accept');
    assert.equal(show(await e.check(session({ recipient: 'x@other.test' }))), '554 5.7.1 <x@other.test>: Relay access denied');
  });
  test('mynetworks forms: IPv6, negation, cidr table', async () => {
    const cidr = h.file('nets.cidr', '127.0.0.0/24 OK\n');
    const e = h.engine(`mynetworks = !127.0.0.5, [::1]/128, cidr:${cidr}\nsmtpd_relay_restrictions = permit_mynetworks, reject\nsmtpd_recipient_restrictions =\n`);
    assert.equal(show(await e.check(session({ clientAddress: '127.0.0.9' }))), 'accept');
    assert.equal(show(await e.check(session({ clientAddress: '::1' }))), 'accept');
    assert.match(show(await e.check(session({ clientAddress: '127.0.0.5' }))), /^554 5\.7\.1 <user@primary\.test>: Recipient address rejected: Access denied$/);
    assert.match(show(await e.check(session({ clientAddress: '127.0.1.1' }))), /^554 /);
  });
  test('permit_auth_destination and reject_unlisted_recipient (relay_recipient_maps)', async () => {
    const rr = h.file('relay_recipients', 'known@relay.test x\n@wild.relay.test x\n');
    const e = h.engine(`relay_domains = relay.test, wild.relay.test\nrelay_recipient_maps = texthash:${rr}\nsmtpd_relay_restrictions = reject_unlisted_recipient, permit_auth_destination, reject\nsmtpd_recipient_restrictions =\n`);
    assert.equal(show(await e.check(session({ recipient: 'known@relay.test' }))), 'accept');
    assert.equal(show(await e.check(session({ recipient: 'any@wild.relay.test' }))), 'accept');
    assert.equal(show(await e.check(session({ recipient: 'nobody@relay.test' }))), '550 5.1.1 <nobody@relay.test>: Recipient address rejected: User unknown in relay recipient table');
    assert.equal(show(await e.check(session({ recipient: 'x@other.test' }))), '554 5.7.1 <x@other.test>: Recipient address rejected: Access denied');
  });
});

describe('access(5) actions', () => {
  const actions: Array<{ value: string; want: string; extra?: (v: Awaited<ReturnType<ReturnType<Harness['engine']>['check']>>) => void }> = [
    { value: 'OK', want: 'accept' },
    { value: '12345', want: 'accept' },
    { value: 'REJECT', want: '554 5.7.1 <x@acl.test>: Recipient address rejected: Access denied' },
    { value: 'REJECT go away', want: '554 5.7.1 <x@acl.test>: Recipient address rejected: go away' },
    { value: 'REJECT 5.1.1 no such user', want: '554 5.1.1 <x@acl.test>: Recipient address rejected: no such user' },
    { value: 'DEFER', want: '450 4.7.1 <x@acl.test>: Recipient address rejected: Access denied' },
    { value: 'DEFER try later', want: '450 4.7.1 <x@acl.test>: Recipient address rejected: try later' },
    { value: 'DEFER_IF_PERMIT Greylisted', want: '450 4.7.1 <x@acl.test>: Recipient address rejected: Greylisted' },
    { value: 'DEFER_IF_REJECT', want: 'accept' },
    { value: '550 5.1.1 Mailbox unknown', want: '550 5.1.1 <x@acl.test>: Recipient address rejected: Mailbox unknown' },
    { value: '450 Greylisted', want: '450 4.7.1 <x@acl.test>: Recipient address rejected: Greylisted' },
    { value: '554 5.2.2 Mailbox full', want: '554 5.2.2 <x@acl.test>: Recipient address rejected: Mailbox full' },
    { value: '421 closing', want: '421 4.7.0 <x@acl.test>: Recipient address rejected: closing', extra: (v) => assert.equal(v.disconnect, true) },
    { value: 'DUNNO', want: 'accept' },
    { value: 'HOLD quarantine', want: 'accept', extra: (v) => assert.equal(v.hold, 'quarantine') },
    { value: 'DISCARD', want: 'accept', extra: (v) => assert.equal(v.discard, '<x@acl.test>: Recipient address triggers DISCARD action') },
    { value: 'WARN be careful', want: 'accept', extra: (v) => assert.deepEqual(v.warnings, ['be careful']) },
    { value: 'PREPEND X-Checked: yes', want: 'accept', extra: (v) => assert.deepEqual(v.prepend, ['X-Checked: yes']) },
    { value: 'FILTER smtp:[127.0.0.1]:10025', want: 'accept', extra: (v) => assert.equal(v.filter, 'smtp:[127.0.0.1]:10025') },
    { value: 'REDIRECT a@b.test', want: 'accept', extra: (v) => assert.equal(v.redirect, 'a@b.test') },
    { value: 'BCC copy@b.test', want: 'accept', extra: (v) => assert.deepEqual(v.bcc, ['copy@b.test']) },
    { value: 'reject', want: '554 5.7.1 <x@acl.test>: Recipient address rejected: Access denied' },
    { value: 'permit_sasl_authenticated, reject', want: '554 5.7.1 <x@acl.test>: Recipient address rejected: Access denied' },
    { value: 'strict', want: '554 5.7.1 <x@acl.test>: Recipient address rejected: Access denied' },
    { value: 'no_such_restriction', want: '451 4.3.5 Server configuration error' },
  ];
  for (const a of actions) {
    test(a.value, async () => {
      const t = h.file(`acl-${actions.indexOf(a)}`, `x@acl.test ${a.value}\n`);
      const e = h.engine(`smtpd_restriction_classes = strict\nstrict = reject\nsmtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_recipient_access texthash:${t}, defer_if_permit_marker_never\n`.replace(', defer_if_permit_marker_never', ''));
      const v = await e.check(session({ recipient: 'x@acl.test' }));
      assert.equal(show(v), a.want);
      a.extra?.(v);
    });
  }
  test('DEFER_IF_REJECT turns a later 5xx into its 450', async () => {
    const t = h.file('dir', 'x@acl.test DEFER_IF_REJECT not sure\n');
    const e = h.engine(`smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_recipient_access texthash:${t}, reject\n`);
    assert.equal(show(await e.check(session({ recipient: 'x@acl.test' }))), '450 4.7.1 <x@acl.test>: Recipient address rejected: not sure');
  });
  test('DEFER_IF_PERMIT loses to a later reject', async () => {
    const t = h.file('dip', 'x@acl.test DEFER_IF_PERMIT wait\n');
    const e = h.engine(`smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_recipient_access texthash:${t}, reject\n`);
    assert.equal(show(await e.check(session({ recipient: 'x@acl.test' }))), '554 5.7.1 <x@acl.test>: Recipient address rejected: Access denied');
  });
  test('sender class fixes the DSN (5.1.1 → 5.1.7), client class uses name[addr]', async () => {
    const s = h.file('snd', 'bad@client.test 550 5.1.1 nope\n');
    const c = h.file('cli', '127.0.0.1 REJECT\n');
    const e = h.engine(`smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_sender_access texthash:${s}\nsmtpd_client_restrictions = check_client_access texthash:${c}\n`);
    assert.equal(show(await e.check(session({ sender: 'bad@client.test', clientAddress: '127.0.0.2' }))), '550 5.1.7 <bad@client.test>: Sender address rejected: nope');
    assert.equal(show(await e.check(session())), '554 5.7.1 <client.test[127.0.0.1]>: Client host rejected: Access denied');
  });
});

describe('access(5) lookup order', () => {
  const order = async (lines: string, addr: string, extra = '') => {
    const t = h.file(`ord-${Math.random().toString(36).slice(2)}`, lines);
    const e = h.engine(`${extra}\nsmtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_recipient_access texthash:${t}\n`);
    return show(await e.check(session({ recipient: addr })));
  };
  test('user@domain before domain before user@', async () => {
    assert.equal(await order('u@d.test REJECT full\nd.test REJECT domain\nu@ REJECT user\n', 'u@d.test'), '554 5.7.1 <u@d.test>: Recipient address rejected: full');
    assert.equal(await order('d.test REJECT domain\nu@ REJECT user\n', 'u@d.test'), '554 5.7.1 <u@d.test>: Recipient address rejected: domain');
    assert.equal(await order('u@ REJECT user\n', 'u@d.test'), '554 5.7.1 <u@d.test>: Recipient address rejected: user');
  });
  test('parent domains match subdomains (parent_domain_matches_subdomains)', async () => {
    assert.equal(await order('d.test REJECT parent\n', 'u@a.b.d.test'), '554 5.7.1 <u@a.b.d.test>: Recipient address rejected: parent');
  });
  test('without smtpd_access_maps in parent_domain_matches_subdomains: .domain is needed', async () => {
    const extra = 'parent_domain_matches_subdomains = mynetworks';
    assert.equal(await order('d.test REJECT parent\n', 'u@a.d.test', extra), 'accept');
    assert.equal(await order('.d.test REJECT dot\n', 'u@a.d.test', extra), '554 5.7.1 <u@a.d.test>: Recipient address rejected: dot');
  });
  test('DUNNO stops the search', async () => {
    assert.equal(await order('u@d.test DUNNO\nd.test REJECT domain\n', 'u@d.test'), 'accept');
  });
  test('recipient_delimiter: user+ext@domain, user@domain, domain, user+ext@, user@', async () => {
    assert.equal(await order('u@d.test REJECT base\n', 'u+x@d.test', 'recipient_delimiter = +'), '554 5.7.1 <u+x@d.test>: Recipient address rejected: base');
    assert.equal(await order('u+x@d.test REJECT ext\nu@d.test REJECT base\n', 'u+x@d.test', 'recipient_delimiter = +'), '554 5.7.1 <u+x@d.test>: Recipient address rejected: ext');
  });
  test('keys are case-folded', async () => {
    assert.equal(await order('u@d.test REJECT folded\n', 'U@D.TEST'), '554 5.7.1 <U@D.TEST>: Recipient address rejected: folded');
  });
  test('null sender is looked up as <>', async () => {
    const t = h.file('nullsnd', '<> REJECT no bounces\n');
    const e = h.engine(`smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_sender_access texthash:${t}\n`);
    assert.equal(show(await e.check(session({ sender: '' }))), '554 5.7.1 <>: Sender address rejected: no bounces');
  });
  const client = async (lines: string, over: Parameters<typeof session>[0], type = 'texthash') => {
    const t = h.file(`cl-${Math.random().toString(36).slice(2)}`, lines);
    const e = h.engine(`smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_client_access ${type}:${t}\n`);
    return show(await e.check(session(over)));
  };
  test('client: name, parent domains, address, networks', async () => {
    assert.equal(await client('host.example.test REJECT name\n', { clientName: 'host.example.test' }), '554 5.7.1 <host.example.test[127.0.0.1]>: Client host rejected: name');
    assert.equal(await client('example.test REJECT parent\n', { clientName: 'host.example.test' }), '554 5.7.1 <host.example.test[127.0.0.1]>: Client host rejected: parent');
    assert.equal(await client('127.0.0.1 REJECT ip\n', {}), '554 5.7.1 <client.test[127.0.0.1]>: Client host rejected: ip');
    assert.equal(await client('127.0 REJECT net\n', {}), '554 5.7.1 <client.test[127.0.0.1]>: Client host rejected: net');
    assert.equal(await client('2001:db8 REJECT v6net\n', { clientAddress: '2001:db8::1', clientName: 'unknown' }), '554 5.7.1 <unknown[2001:db8::1]>: Client host rejected: v6net');
  });
  test('cidr tables see only the address', async () => {
    assert.equal(await client('127.0.0.0/8 REJECT cidr\n', {}, 'cidr'), '554 5.7.1 <client.test[127.0.0.1]>: Client host rejected: cidr');
  });
  test('check_reverse_client_hostname_access and check_helo_access', async () => {
    const r = h.file('rev', 'dyn.example.test REJECT dynamic\n');
    const he = h.file('helo', 'localhost REJECT liar\n');
    const e = h.engine(`smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_reverse_client_hostname_access texthash:${r}, check_helo_access texthash:${he}\n`);
    assert.equal(show(await e.check(session({ clientName: 'unknown', reverseClientName: 'pool.dyn.example.test' }))), '554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: dynamic');
    assert.equal(show(await e.check(session({ helo: 'localhost' }))), '554 5.7.1 <localhost>: Helo command rejected: liar');
  });
});

describe('DNS lists', () => {
  const rcpt = (list: string, over: Parameters<typeof session>[0] = {}, extra = '') =>
    h.engine(`${extra}\nsmtpd_relay_restrictions =\nsmtpd_recipient_restrictions = ${list}\n`).check(session(over)).then(show);
  test('reject_rbl_client: listed, with the TXT reason', async () => {
    assert.equal(await rcpt('reject_rbl_client zen.test', { clientAddress: '127.0.0.2' }), '554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using zen.test; https://www.spamhaus.org/query/ip/127.0.0.2');
  });
  test('reject_rbl_client: not listed', async () => {
    assert.equal(await rcpt('reject_rbl_client zen.test', { clientAddress: '127.0.0.1' }), 'accept');
  });
  test('=127.0.0.2 filter', async () => {
    assert.equal(await rcpt('reject_rbl_client zen.test=127.0.0.2', { clientAddress: '127.0.0.3' }), 'accept');
    assert.equal(await rcpt('reject_rbl_client zen.test=127.0.0.[2;4]', { clientAddress: '127.0.0.3' }), '554 5.7.1 Service unavailable; Client host [127.0.0.3] blocked using zen.test');
  });
  test('127.255.255.0/24 answers are list errors, never blocks', async () => {
    h.lines.length = 0;
    assert.equal(await rcpt('reject_rbl_client zen.test', { clientAddress: '127.0.0.9' }), 'accept');
    assert.ok(h.lines.some((l) => l.includes('127.255.255.254')), h.lines.join('\n'));
  });
  test('a DNS list that times out blocks nobody', async () => {
    assert.equal(await rcpt('reject_rbl_client zen.test', { clientAddress: '127.0.0.8' }), 'accept');
  });
  test('maps_rbl_reject_code, default_rbl_reply and rbl_reply_maps', async () => {
    assert.equal(await rcpt('reject_rbl_client zen.test', { clientAddress: '127.0.0.3' }, 'maps_rbl_reject_code = 550'), '550 5.7.1 Service unavailable; Client host [127.0.0.3] blocked using zen.test');
    const m = h.file('rblmap', 'zen.test $rbl_code 5.7.1 Go away $rbl_what ($rbl_domain)\n');
    assert.equal(await rcpt('reject_rbl_client zen.test', { clientAddress: '127.0.0.3' }, `rbl_reply_maps = texthash:${m}`), '554 5.7.1 Go away 127.0.0.3 (zen.test)');
    assert.equal(await rcpt('reject_rbl_client zen.test', { clientAddress: '127.0.0.3' }, 'default_rbl_reply = 450 4.7.1 later $rbl_class'), '450 4.7.1 later Client host');
  });
  test('reject_rhsbl_client / _sender / _helo / _recipient', async () => {
    assert.equal(await rcpt('reject_rhsbl_client multi.uribl.test', { clientName: 'spammer.test' }), '554 5.7.1 Service unavailable; Client host [spammer.test] blocked using multi.uribl.test');
    assert.equal(await rcpt('reject_rhsbl_sender multi.uribl.test', { sender: 'a@spammer.test' }), '554 5.7.1 Service unavailable; Sender address [spammer.test] blocked using multi.uribl.test');
    assert.equal(await rcpt('reject_rhsbl_helo multi.uribl.test', { helo: 'spammer.test' }), '554 5.7.1 Service unavailable; Helo command [spammer.test] blocked using multi.uribl.test');
    assert.equal(await rcpt('reject_rhsbl_recipient multi.uribl.test', { recipient: 'a@spammer.test' }), '554 5.7.1 Service unavailable; Recipient address [spammer.test] blocked using multi.uribl.test');
    assert.equal(await rcpt('reject_rhsbl_client multi.uribl.test', { clientName: 'unknown' }), 'accept');
  });
  test('permit_dnswl_client permits listed clients, but never past reject_unauth_destination', async () => {
    assert.equal(await rcpt('permit_dnswl_client wl.test, reject_rbl_client zen.test', { clientAddress: '127.0.0.2', recipient: 'x@relay.test' }, 'relay_domains = relay.test'), 'accept');
    assert.equal(await rcpt('permit_dnswl_client wl.test, reject_unauth_destination', { clientAddress: '127.0.0.2', recipient: 'x@other.test' }), '554 5.7.1 <x@other.test>: Relay access denied');
    assert.equal(await rcpt('permit_dnswl_client wl.test=127.0.[0..255].[1;2], reject', { clientAddress: '127.0.0.2', recipient: 'x@relay.test' }, 'relay_domains = relay.test'), 'accept');
  });
});

describe('address and host name checks', () => {
  const rcpt = (list: string, over: Parameters<typeof session>[0] = {}, extra = '') =>
    h.engine(`${extra}\nsmtpd_relay_restrictions =\nsmtpd_recipient_restrictions = ${list}\n`).check(session(over)).then(show);
  test('reject_non_fqdn_sender / _recipient', async () => {
    assert.equal(await rcpt('reject_non_fqdn_sender', { sender: 'user@localhost' }), '504 5.5.2 <user@localhost>: Sender address rejected: need fully-qualified address');
    assert.equal(await rcpt('reject_non_fqdn_recipient', { recipient: 'user' }), '504 5.5.2 <user>: Recipient address rejected: need fully-qualified address');
    assert.equal(await rcpt('reject_non_fqdn_sender', { sender: '' }), 'accept');
    assert.equal(await rcpt('reject_non_fqdn_sender, reject_non_fqdn_recipient'), 'accept');
  });
  test('reject_non_fqdn_helo_hostname / reject_invalid_helo_hostname', async () => {
    assert.equal(await rcpt('reject_non_fqdn_helo_hostname', { helo: 'box' }), '504 5.5.2 <box>: Helo command rejected: need fully-qualified hostname');
    assert.equal(await rcpt('reject_invalid_helo_hostname', { helo: 'bad_host!' }), '501 5.5.2 <bad_host!>: Helo command rejected: Invalid name');
    assert.equal(await rcpt('reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname', { helo: '[127.0.0.1]' }), 'accept');
  });
  test('reject_unknown_sender_domain / _recipient_domain', async () => {
    assert.equal(await rcpt('reject_unknown_sender_domain', { sender: 'a@nx.test' }), '450 4.1.8 <a@nx.test>: Sender address rejected: Domain not found');
    assert.equal(await rcpt('reject_unknown_recipient_domain', { recipient: 'a@nx.test' }), '450 4.1.2 <a@nx.test>: Recipient address rejected: Domain not found');
    assert.equal(await rcpt('reject_unknown_sender_domain', { sender: 'a@aonly.test' }), 'accept');
    assert.equal(await rcpt('reject_unknown_sender_domain', { sender: 'a@primary.test' }), 'accept');
    assert.equal(await rcpt('reject_unknown_recipient_domain', { recipient: 'a@nullmx.test' }), '556 5.1.10 <a@nullmx.test>: Recipient address rejected: Domain nullmx.test does not accept mail (nullMX)');
    assert.equal(await rcpt('reject_unknown_sender_domain', { sender: 'a@nx.test' }, 'unknown_address_reject_code = 550'), '550 5.1.8 <a@nx.test>: Sender address rejected: Domain not found');
    // temporary failure: defer_if_permit, so a final permit becomes 450
    assert.equal(await rcpt('reject_unknown_recipient_domain, permit', { recipient: 'a@failmx.test' }), '450 4.1.2 <a@failmx.test>: Recipient address rejected: Domain not found');
  });
  test('reject_unauth_pipelining', async () => {
    const e = h.engine('smtpd_data_restrictions = reject_unauth_pipelining\n');
    assert.equal(show(await e.check(session({ stage: 'data', pipelined: true }))), '503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining');
    assert.equal(show(await e.check(session({ stage: 'data' }))), 'accept');
  });
  test('reject_unknown_client_hostname', async () => {
    assert.equal(await rcpt('reject_unknown_client_hostname', { clientName: 'unknown' }), '450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.1]');
  });
  test('permit, reject, defer, defer_if_permit, defer_if_reject', async () => {
    assert.equal(await rcpt('permit, reject'), 'accept');
    assert.equal(await rcpt('reject'), '554 5.7.1 <user@primary.test>: Recipient address rejected: Access denied');
    assert.equal(await rcpt('defer'), '450 4.7.1 <user@primary.test>: Recipient address rejected: Access denied');
    assert.equal(await rcpt('defer_if_permit, permit'), '450 4.7.1 <user@primary.test>: Recipient address rejected: defer_if_permit requested');
    assert.equal(await rcpt('defer_if_reject, reject'), '450 4.7.1 <user@primary.test>: Recipient address rejected: defer_if_reject requested');
    assert.equal(await rcpt('reject', {}, 'reject_code = 550'), '550 5.7.1 <user@primary.test>: Recipient address rejected: Access denied');
  });
});

describe('evaluation order', () => {
  test('smtpd_delay_reject = yes: client restrictions reject at RCPT, not at connect', async () => {
    const e = h.engine('smtpd_client_restrictions = reject\n');
    assert.equal(show(await e.check(session({ stage: 'connect' }))), 'accept');
    assert.equal(show(await e.check(session())), '554 5.7.1 <client.test[127.0.0.1]>: Client host rejected: Access denied');
  });
  test('smtpd_delay_reject = no: each list at its own stage', async () => {
    const e = h.engine('smtpd_delay_reject = no\nsmtpd_client_restrictions = reject\nsmtpd_helo_restrictions = reject\nsmtpd_sender_restrictions = reject\nsmtpd_relay_restrictions =\n');
    assert.equal(show(await e.check(session({ stage: 'connect' }))), '554 5.7.1 <client.test[127.0.0.1]>: Client host rejected: Access denied');
    assert.equal(show(await e.check(session({ stage: 'helo' }))), '554 5.7.1 <client.test>: Helo command rejected: Access denied');
    assert.equal(show(await e.check(session({ stage: 'mail' }))), '554 5.7.1 <sender@client.test>: Sender address rejected: Access denied');
    assert.equal(show(await e.check(session())), 'accept');
  });
  test('a permit in the client list does not skip the helo list', async () => {
    const e = h.engine('smtpd_client_restrictions = permit\nsmtpd_helo_restrictions = reject\nsmtpd_relay_restrictions =\n');
    assert.equal(show(await e.check(session())), '554 5.7.1 <client.test>: Helo command rejected: Access denied');
  });
  test('defer_if_permit in the client list defers an otherwise accepted RCPT', async () => {
    const e = h.engine('smtpd_client_restrictions = defer_if_permit\nsmtpd_relay_restrictions =\n');
    assert.equal(show(await e.check(session())), '450 4.7.1 <client.test[127.0.0.1]>: Client host rejected: defer_if_permit requested');
  });
  test('warn_if_reject turns the next reject into a warning', async () => {
    const e = h.engine('smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = warn_if_reject, reject_non_fqdn_sender, reject\n');
    const v = await e.check(session({ sender: 'a@localhost' }));
    assert.equal(show(v), '554 5.7.1 <user@primary.test>: Recipient address rejected: Access denied');
    assert.deepEqual(v.warnings, ['504 5.5.2 <a@localhost>: Sender address rejected: need fully-qualified address']);
  });
  test('restriction classes', async () => {
    const t = h.file('cls', 'primary.test backup_only\n');
    const e = h.engine(`smtpd_restriction_classes = backup_only\nbackup_only = permit_mx_backup, reject\npermit_mx_backup_networks = 127.0.0.2\nsmtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_recipient_access texthash:${t}, reject\n`);
    assert.equal(show(await e.check(session())), 'accept');
    assert.equal(show(await e.check(session({ recipient: 'x@other.test' }))), '554 5.7.1 <x@other.test>: Recipient address rejected: Access denied');
  });
  test('smtpd_helo_required', async () => {
    const e = h.engine('smtpd_helo_required = yes\n');
    assert.equal(show(await e.check(session({ stage: 'mail', helo: undefined }))), '503 5.5.1 Error: send HELO/EHLO first');
    assert.equal(show(await e.check(session({ stage: 'mail' }))), 'accept');
  });
  test('data, end-of-data and etrn lists', async () => {
    const e = h.engine('mynetworks = 127.0.0.254/32\nsmtpd_data_restrictions = reject\nsmtpd_end_of_data_restrictions = defer\nsmtpd_etrn_restrictions = permit_mynetworks, reject\n');
    assert.equal(show(await e.check(session({ stage: 'data' }))), '554 5.7.1 <DATA>: Data command rejected: Access denied');
    assert.equal(show(await e.check(session({ stage: 'end-of-data' }))), '450 4.7.1 <END-OF-MESSAGE>: End-of-data command rejected: Access denied');
    assert.equal(show(await e.check(session({ stage: 'etrn', etrnDomain: 'primary.test' }))), '554 5.7.1 <primary.test>: Etrn command rejected: Access denied');
  });
  test('soft_bounce turns 5xx into 4xx', async () => {
    const e = h.engine('soft_bounce = yes\nsmtpd_relay_restrictions = reject_unauth_destination\n');
    assert.equal(show(await e.check(session({ recipient: 'x@other.test' }))), '454 4.7.1 <x@other.test>: Relay access denied');
  });
});

describe('reject_unverified_recipient with a verifier probing a real SMTP sink', () => {
  let sink: Sink;
  before(async () => { sink = await startSink({ host: '127.0.0.2', users: ['user@primary.test'] }); });
  after(async () => { await sink.close(); });
  const conf = (extra = '') => `${BACKUP}${extra}\nsmtpd_recipient_restrictions = reject_unverified_recipient, permit_mx_backup, reject_unauth_destination, permit\n`;
  test('deliverable: accepted', async () => {
    const e = h.engine(conf(), { verifier: new ProbingVerifier('127.0.0.2', sink.port) });
    assert.equal(show(await e.check(session())), 'accept');
  });
  test('undeliverable with the default 450: unverified address', async () => {
    const e = h.engine(conf(), { verifier: new ProbingVerifier('127.0.0.2', sink.port) });
    assert.match(show(await e.check(session({ recipient: 'nobody@primary.test' }))), /^450 4\.1\.1 <nobody@primary\.test>: Recipient address rejected: unverified address: host 127\.0\.0\.2\[127\.0\.0\.2\] said: 550 .* \(in reply to RCPT TO command\)$/);
  });
  test('unverified_recipient_reject_code = 550: undeliverable address', async () => {
    const e = h.engine(conf('unverified_recipient_reject_code = 550'), { verifier: new ProbingVerifier('127.0.0.2', sink.port) });
    assert.match(show(await e.check(session({ recipient: 'nobody@primary.test' }))), /^550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: undeliverable address: host /);
  });
  test("the seed's 577: DSN class follows the code", async () => {
    const e = h.engine(conf('unverified_recipient_reject_code = 577'), { verifier: new ProbingVerifier('127.0.0.2', sink.port) });
    assert.match(show(await e.check(session({ recipient: 'nobody@primary.test' }))), /^577 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: undeliverable address: /);
  });
  test('primary down: tempfail → 450 unverified address: connect to ...', async () => {
    const closed = await startSink({ host: '127.0.0.2' });
    const port = closed.port;
    await closed.close();
    const e = h.engine(conf(), { verifier: new ProbingVerifier('127.0.0.2', port) });
    assert.equal(show(await e.check(session({ recipient: 'bob@primary.test' }))), `450 4.1.1 <bob@primary.test>: Recipient address rejected: unverified address: connect to 127.0.0.2[127.0.0.2]:${port}: Connection refused`);
  });
  test('slow primary: Address verification in progress', async () => {
    const slow = await startSink({ host: '127.0.0.2', delayMs: 1500 });
    try {
      const e = h.engine(conf(), { verifier: new ProbingVerifier('127.0.0.2', slow.port, 200) });
      assert.equal(show(await e.check(session({ recipient: 'carol@primary.test' }))), '450 4.1.1 <carol@primary.test>: Recipient address rejected: unverified address: Address verification in progress');
    } finally {
      await slow.close();
    }
  });
  test('tempfail_action = defer_if_permit: a later reject wins', async () => {
    const closed = await startSink({ host: '127.0.0.2' });
    const port = closed.port;
    await closed.close();
    const e = h.engine(`${BACKUP}\nsmtpd_recipient_restrictions = reject_unverified_recipient, reject\n`, { verifier: new ProbingVerifier('127.0.0.2', port) });
    assert.equal(show(await e.check(session({ recipient: 'bob@primary.test' }))), '554 5.7.1 <bob@primary.test>: Recipient address rejected: Access denied');
  });
  test('unverified_recipient_reject_reason replaces the text', async () => {
    const e = h.engine(conf('unverified_recipient_reject_reason = Address lookup failed'), { verifier: new ProbingVerifier('127.0.0.2', sink.port) });
    assert.equal(show(await e.check(session({ recipient: 'nobody@primary.test' }))), '450 4.1.1 <nobody@primary.test>: Recipient address rejected: unverified address: Address lookup failed');
  });
  test('reject_unverified_sender', async () => {
    const e = h.engine(`${BACKUP}\nunverified_sender_reject_code = 550\nsmtpd_sender_restrictions = reject_unverified_sender\n`, { verifier: new ProbingVerifier('127.0.0.2', sink.port) });
    assert.match(show(await e.check(session({ sender: 'nobody@primary.test' }))), /^550 5\.1\.7 <nobody@primary\.test>: Sender address rejected: undeliverable address: /);
  });
  test('no verifier: 450 address verification problem', async () => {
    const e = h.engine(conf());
    assert.equal(show(await e.check(session())), '450 4.1.1 <user@primary.test>: Recipient address rejected: address verification problem');
  });
});

describe('load-time errors name the restriction', () => {
  const bad: Array<{ list: string; want: RegExp }> = [
    { list: 'permit_mx_bakup', want: /smtpd_recipient_restrictions|unknown smtpd restriction: "permit_mx_bakup"/ },
    { list: 'check_client_access', want: /restriction check_client_access needs a type:table argument/ },
    { list: 'check_client_access nosuchtype:/x', want: /check_client_access nosuchtype:\/x: unsupported dictionary type: nosuchtype/ },
    { list: 'check_client_access cidr:/nonexistent/file', want: /check_client_access cidr:\/nonexistent\/file: .*No such file/ },
    { list: 'reject_rbl_client zen.test=127.0.0.300', want: /reject_rbl_client zen\.test=127\.0\.0\.300: invalid DNSBL reply filter/ },
    { list: 'check_policy_service tcp:1.2.3.4', want: /check_policy_service tcp:1\.2\.3\.4: bad policy service address/ },
    { list: 'check_policy_service { inet:127.0.0.1:9, bogus=1 }', want: /unknown setting "bogus"/ },
    { list: 'check_policy_service { inet:127.0.0.1:9, timeout=soon }', want: /bad timeout value "soon"/ },
  ];
  for (const b of bad) {
    test(b.list, () => {
      assert.throws(() => h.engine(`smtpd_recipient_restrictions = ${b.list}\n`), b.want);
    });
  }
});

describe('check_policy_service', () => {
  test('the reply is an access(5) action; a dead service gives its default_action', async () => {
    const net = await import('node:net');
    const server = net.createServer((sock) => {
      sock.setEncoding('utf8');
      sock.on('data', () => sock.write('action=DEFER_IF_PERMIT Greylisted\n\n'));
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as import('node:net').AddressInfo).port;
    try {
      const e = h.engine(`smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:${port}, permit\n`);
      assert.equal(show(await e.check(session())), '450 4.7.1 <user@primary.test>: Recipient address rejected: Greylisted');
      await e.close();
      const dead = h.engine('smtpd_policy_service_try_limit = 1\nsmtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:1\n');
      assert.equal(show(await dead.check(session())), '451 4.3.5 <user@primary.test>: Recipient address rejected: Server configuration problem');
      const tolerant = h.engine('smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = check_policy_service { inet:127.0.0.1:1, default_action=DUNNO, try_limit=1 }\n');
      assert.equal(show(await tolerant.check(session())), 'accept');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('smtpd_reject_unlisted_recipient', () => {
  let h: Harness;
  before(async () => { h = await startHarness(); });
  after(async () => { await h.close(); });
  const cf = 'myhostname = mx2.backup.test\nmydestination = $myhostname\ninet_interfaces = 127.0.0.1\nsmtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit\n';
  test('our own addresses have no mailboxes: 550 5.1.1 after the lists permitted them', async () => {
    const e = h.engine(cf + 'smtpd_reject_unlisted_recipient = yes\n');
    assert.equal(show(await e.check(session({ recipient: 'x@mx2.backup.test' }))), '550 5.1.1 <x@mx2.backup.test>: Recipient address rejected: User unknown in local recipient table');
    assert.equal(show(await e.check(session({ recipient: 'x@[127.0.0.1]' }))), '550 5.1.1 <x@[127.0.0.1]>: Recipient address rejected: User unknown in local recipient table');
    assert.equal(show(await e.check(session({ recipient: 'x@relayed.test' }))), 'accept');
  });
  test('unknown_local_recipient_reject_code and = no', async () => {
    const e = h.engine(cf + 'smtpd_reject_unlisted_recipient = yes\nunknown_local_recipient_reject_code = 450\n');
    assert.equal(show(await e.check(session({ recipient: 'x@mx2.backup.test' }))), '450 4.1.1 <x@mx2.backup.test>: Recipient address rejected: User unknown in local recipient table');
    const off = h.engine(cf + 'smtpd_reject_unlisted_recipient = no\n');
    assert.equal(show(await off.check(session({ recipient: 'x@mx2.backup.test' }))), 'accept');
  });
});
