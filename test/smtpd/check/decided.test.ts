// Which restriction decided a reject (the `restriction` label of backstop_smtpd_rejects_total and
// of `backstop status`' rejects): the innermost element that rejected — inside a restriction
// class, the class's element — a defer_if_permit's own element, the implicit unlisted-recipient
// check, and smtpd_helo_required. An accept names nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, session, type Harness } from './harness.js';

let h: Harness;
before(async () => { h = await startHarness(); });
after(async () => { await h.close(); });

const BASE = `mydestination = mx2.backup.test
mynetworks = 127.0.0.254/32
relay_domains = relay.test
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
`;

test('the restriction that decided a reject', async () => {
  const cases: Array<{ desc: string; cf: string; over?: Parameters<typeof session>[0]; want: string | undefined }> = [
    { desc: 'relay refused', cf: 'smtpd_recipient_restrictions = permit', over: { recipient: 'x@other.test' }, want: 'reject_unauth_destination' },
    { desc: 'an access table', cf: 'smtpd_recipient_restrictions = check_recipient_access inline:{ x@relay.test=REJECT }, permit', over: { recipient: 'x@relay.test' }, want: 'check_recipient_access' },
    { desc: 'inside a restriction class', cf: 'smtpd_restriction_classes = strict\nstrict = check_sender_access inline:{ sender@client.test=REJECT }\nsmtpd_recipient_restrictions = strict, permit', over: { recipient: 'x@relay.test' }, want: 'check_sender_access' },
    { desc: 'a plain reject', cf: 'smtpd_recipient_restrictions = reject', over: { recipient: 'x@relay.test' }, want: 'reject' },
    { desc: 'defer_if_permit', cf: 'smtpd_recipient_restrictions = defer_if_permit, permit', over: { recipient: 'x@relay.test' }, want: 'defer_if_permit' },
    { desc: 'accepted', cf: 'smtpd_recipient_restrictions = permit', over: { recipient: 'x@relay.test' }, want: undefined },
    { desc: 'our own domain without mailboxes', cf: 'smtpd_recipient_restrictions = permit\nsmtpd_reject_unlisted_recipient = yes', over: { recipient: 'x@mx2.backup.test' }, want: 'smtpd_reject_unlisted_recipient' },
    { desc: 'MAIL before HELO', cf: 'smtpd_helo_required = yes', over: { stage: 'mail', helo: undefined }, want: 'smtpd_helo_required' },
  ];
  for (const c of cases) {
    const v = await h.engine(BASE + c.cf).check(session(c.over));
    assert.equal(v.action, c.want ? 'reject' : 'accept', c.desc);
    assert.equal(v.restriction, c.want, c.desc);
  }
});
