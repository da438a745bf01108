// DSN generation: the rules (NOTIFY, null sender, double bounce) and the notice itself, parsed
// back part by part; and one notice delivered through the SMTP client to a sink.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buildDsn, notifyWants, shouldBounce, type BuildDsnInput } from '../../src/bounce/index.js';
import { Maillog } from '../../src/log/index.js';
import { deliver } from '../../src/smtp/index.js';
import { startSink } from '../helpers/sink.js';
import { startDnsServer } from '../helpers/dnsserver.js';
import { Resolver } from '../../src/dns/index.js';

const original = Buffer.from('From: sender@client.test\r\nTo: user@primary.test\r\nSubject: hello\r\nMessage-ID: <m1@client.test>\r\n\r\nbody line\r\n');

function input(extra: Partial<BuildDsnInput> = {}): BuildDsnInput {
  return {
    kind: 'failure',
    queueId: '0B92E5104E3',
    sender: 'sender@client.test',
    myhostname: 'mx2.backup.test',
    arrivalTime: Date.UTC(2026, 10, 24, 19, 1, 42),
    now: new Date(Date.UTC(2026, 10, 29, 19, 1, 42)),
    original,
    recipients: [{
      address: 'nobody@primary.test', orcpt: 'rfc822;nobody@primary.test', status: '5.1.1',
      text: 'host mx1.primary.test[127.0.0.2] said: 550 5.1.1 <nobody@primary.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)',
      remoteMta: 'mx1.primary.test', diagnostic: '550 5.1.1 <nobody@primary.test>: Recipient address rejected: User unknown',
    }],
    ...extra,
  };
}

interface Parsed {
  headers: Record<string, string>;
  parts: Array<{ headers: Record<string, string>; body: string }>;
}

/** A small MIME reader for the test: unfolds headers, splits on the boundary. */
function parse(content: Buffer): Parsed {
  const text = content.toString('utf8');
  assert.ok(!/[^\r]\n/.test(text), 'CRLF line endings only');
  const readHeaders = (block: string) => {
    const h: Record<string, string> = {};
    for (const line of block.replace(/\r\n[ \t]/g, ' ').split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0) h[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    return h;
  };
  const split = text.indexOf('\r\n\r\n');
  const headers = readHeaders(text.slice(0, split));
  const boundary = /boundary="([^"]+)"/.exec(headers['content-type'])![1];
  const chunks = text.slice(split + 4).split(`--${boundary}`);
  assert.equal(chunks[chunks.length - 1], '--\r\n', 'closing boundary');
  const parts = chunks.slice(1, -1).map((c) => {
    const body = c.replace(/^\r\n/, '');
    const e = body.indexOf('\r\n\r\n');
    return { headers: readHeaders(body.slice(0, e)), body: body.slice(e + 4) };
  });
  return { headers, parts };
}

/** Fields of message/delivery-status: per-message block, then one block per recipient. */
function dsnFields(body: string): Array<Record<string, string>> {
  return body.trim().split('\r\n\r\n').map((block) => Object.fromEntries(block.split('\r\n').map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i), l.slice(i + 1).trim()];
  })));
}

test('notifyWants / shouldBounce: NOTIFY and the null sender', () => {
  const cases = [
    { kind: 'failure', sender: 's@x', notify: undefined, expected: { send: true, to: 'sender' } },
    { kind: 'delay', sender: 's@x', notify: undefined, expected: { send: true, to: 'sender' } },
    { kind: 'success', sender: 's@x', notify: undefined, expected: { send: false, to: null } },
    { kind: 'failure', sender: 's@x', notify: ['NEVER'], expected: { send: false, to: null } },
    { kind: 'delay', sender: 's@x', notify: ['FAILURE'], expected: { send: false, to: null } },
    { kind: 'failure', sender: 's@x', notify: ['DELAY'], expected: { send: false, to: null } },
    { kind: 'success', sender: 's@x', notify: ['SUCCESS'], expected: { send: true, to: 'sender' } },
    { kind: 'failure', sender: '', notify: undefined, expected: { send: true, to: 'postmaster' } },
    { kind: 'delay', sender: '', notify: undefined, expected: { send: false, to: null } },
    { kind: 'success', sender: '', notify: ['SUCCESS'], expected: { send: false, to: null } },
  ] as const;
  for (const c of cases) assert.deepEqual(shouldBounce(c.kind, c.sender, c.notify ? [...c.notify] : undefined), c.expected, JSON.stringify(c));
  assert.equal(notifyWants('failure', ['FAILURE', 'DELAY']), true);
});

test('failure notice: headers, human part, delivery-status fields, full original', () => {
  const n = buildDsn(input({ envid: 'ENV42' }))!;
  assert.equal(n.sender, '');
  assert.equal(n.recipient, 'sender@client.test');
  assert.equal(n.doubleBounce, false);
  const p = parse(n.content);
  assert.equal(p.headers.from, 'MAILER-DAEMON@mx2.backup.test (Mail Delivery System)');
  assert.equal(p.headers.subject, 'Undelivered Mail Returned to Sender');
  assert.equal(p.headers.to, 'sender@client.test');
  assert.equal(p.headers['auto-submitted'], 'auto-replied');
  assert.match(p.headers['content-type'], /^multipart\/report; report-type=delivery-status; boundary="0B92E5104E3\.\d+\/mx2\.backup\.test"$/);
  assert.equal(p.parts.length, 3);
  assert.equal(p.parts[0].headers['content-type'], 'text/plain; charset=us-ascii');
  assert.match(p.parts[0].body, /^This is the mail system at host mx2\.backup\.test\.\r\n\r\nI'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients\. It's attached below\./);
  assert.match(p.parts[0].body, /<nobody@primary\.test>: host mx1\.primary\.test\[127\.0\.0\.2\] said: 550 5\.1\.1\r\n    <nobody@primary\.test>/);
  assert.equal(p.parts[1].headers['content-type'], 'message/delivery-status');
  const [msg, rcpt] = dsnFields(p.parts[1].body);
  assert.deepEqual(Object.keys(msg), ['Reporting-MTA', 'X-Postfix-Queue-ID', 'X-Postfix-Sender', 'Original-Envelope-Id', 'Arrival-Date']);
  assert.equal(msg['Reporting-MTA'], 'dns; mx2.backup.test');
  assert.equal(msg['X-Postfix-Queue-ID'], '0B92E5104E3');
  assert.equal(msg['X-Postfix-Sender'], 'rfc822; sender@client.test');
  assert.equal(msg['Original-Envelope-Id'], 'ENV42');
  assert.match(msg['Arrival-Date'], /^Tue, 24 Nov 2026 \d\d:01:42 [+-]\d{4}/);
  assert.deepEqual(rcpt, {
    'Final-Recipient': 'rfc822; nobody@primary.test',
    'Original-Recipient': 'rfc822;nobody@primary.test',
    Action: 'failed',
    Status: '5.1.1',
    'Remote-MTA': 'dns; mx1.primary.test',
    'Diagnostic-Code': 'smtp; 550 5.1.1 <nobody@primary.test>: Recipient address rejected: User unknown',
  });
  assert.equal(p.parts[2].headers['content-type'], 'message/rfc822');
  assert.equal(p.parts[2].headers['content-description'], 'Undelivered Message');
  assert.equal(p.parts[2].body, original.toString() + '\r\n');
});

test('RET=HDRS and oversized originals return the headers only; local failures get X-Postfix diagnostics', () => {
  const n = buildDsn(input({ ret: 'HDRS', recipients: [{ address: 'a@loop.test', status: '5.4.6', text: 'mail for loop.test loops back to myself' }] }))!;
  const p = parse(n.content);
  assert.equal(p.parts[2].headers['content-type'], 'text/rfc822-headers');
  assert.equal(p.parts[2].headers['content-description'], 'Undelivered Message Headers');
  assert.ok(p.parts[2].body.includes('Subject: hello\r\n'));
  assert.ok(!p.parts[2].body.includes('body line'));
  const [, rcpt] = dsnFields(p.parts[1].body);
  assert.equal(rcpt['Diagnostic-Code'], 'X-Postfix; mail for loop.test loops back to myself');
  assert.equal(rcpt['Remote-MTA'], undefined);
  const big = parse(buildDsn(input({ bounceSizeLimit: 10 }))!.content);
  assert.equal(big.parts[2].headers['content-type'], 'text/rfc822-headers');
});

test('delay warning: Action delayed, Will-Retry-Until, warning template, headers only', () => {
  const n = buildDsn(input({ kind: 'delay', delayWarningHours: 4, maximalQueueLifetimeDays: 5, recipients: [{ address: 'user@primary.test', status: '4.4.1', text: 'connect to mx1.primary.test[127.0.0.2]:25: Connection refused' }] }))!;
  const p = parse(n.content);
  assert.equal(p.headers.subject, 'Delayed Mail (still being retried)');
  assert.match(p.parts[0].body, /# THIS IS A WARNING ONLY\.  YOU DO NOT NEED TO RESEND YOUR MESSAGE\. #/);
  assert.match(p.parts[0].body, /Your message could not be delivered for more than 4 hour\(s\)\.\r\nIt will be retried until it is 5 day\(s\) old\./);
  const [, rcpt] = dsnFields(p.parts[1].body);
  assert.equal(rcpt.Action, 'delayed');
  assert.equal(rcpt.Status, '4.4.1');
  assert.match(rcpt['Will-Retry-Until'], /^Sun, 29 Nov 2026 \d\d:01:42/);
  assert.equal(p.parts[2].headers['content-type'], 'text/rfc822-headers');
});

test('success notice only for NOTIFY=SUCCESS; NOTIFY=NEVER and null-sender rules', () => {
  const rcpt = { address: 'user@primary.test', status: '2.0.0', text: '250 2.0.0 Ok: queued as X', remoteMta: 'mx1.primary.test', diagnostic: '250 2.0.0 Ok: queued as X' };
  assert.equal(buildDsn(input({ kind: 'success', recipients: [rcpt] })), null);
  const s = parse(buildDsn(input({ kind: 'success', recipients: [{ ...rcpt, notify: ['SUCCESS'] }] }))!.content);
  assert.equal(s.headers.subject, 'Successful Mail Delivery Report');
  assert.equal(dsnFields(s.parts[1].body)[1].Action, 'delivered');
  assert.equal(buildDsn(input({ recipients: [{ ...input().recipients[0], notify: ['NEVER'] }] })), null);
  // Only recipients that asked are reported.
  const two = buildDsn(input({ recipients: [{ ...input().recipients[0], notify: ['NEVER'] }, { address: 'b@primary.test', status: '5.1.1', text: 'x' }] }))!;
  assert.equal(dsnFields(parse(two.content).parts[1].body).length, 2);
  // Null sender: failure → double bounce to the postmaster; delay → nothing.
  const dbl = buildDsn(input({ sender: '', doubleBounceRecipient: 'postmaster@mx2.backup.test' }))!;
  assert.equal(dbl.recipient, 'postmaster@mx2.backup.test');
  assert.equal(dbl.doubleBounce, true);
  assert.equal(parse(dbl.content).headers.subject, 'Postmaster Copy: Undelivered Mail');
  assert.equal(buildDsn(input({ sender: '' }))!.recipient, 'postmaster');
  assert.equal(buildDsn(input({ sender: '', kind: 'delay' })), null);
});

test('a notice travels through the SMTP client with the null sender and arrives intact', async () => {
  const sink = await startSink({ host: '127.0.0.3' });
  const dns = await startDnsServer({});
  const resolver = new Resolver({ servers: [dns.servers], timeoutMs: 1000 });
  const log = new Maillog();
  log.open(undefined, { quiet: true });
  try {
    const n = buildDsn(input())!;
    const r = await deliver({
      queueId: 'B1', sender: n.sender, recipients: [{ address: n.recipient }], size: n.content.length,
      body: () => Readable.from([n.content]),
    }, { dns: resolver, isSelf: () => false, relayhost: `[127.0.0.3]:${sink.port}`, logger: log.logger('smtp'), session: { heloName: 'mx2.backup.test' } });
    assert.equal(r[0].status, 'sent');
    const [m] = await sink.waitFor(1);
    assert.equal(m.from, '');
    assert.deepEqual(m.to, ['sender@client.test']);
    assert.ok(m.raw.equals(n.content));
    const [, rcpt] = dsnFields(parse(m.raw).parts[1].body);
    assert.equal(rcpt.Status, '5.1.1');
  } finally {
    resolver.close();
    await dns.close();
    await sink.close();
  }
});
