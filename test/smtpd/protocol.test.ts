// smtpd protocol: greeting, EHLO keywords, every command with Postfix's replies, DSN parameters
// reaching the envelope, the Received header, log lines. Real sockets on 127.0.0.1.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, TestEngine, type Harness } from './harness.js';
import type { Flusher } from '../../src/smtpd/types.js';
import { sleep } from '../helpers/net.js';

describe('smtpd protocol', () => {
  let h: Harness;
  const flushed: string[] = [];
  const flusher: Flusher = {
    async flushDomain(d) {
      flushed.push(d);
      return d === 'primary.test';
    },
  };
  before(async () => {
    h = await startHarness({ engine: new TestEngine(new Set(['x@other.test'])), flusher });
  });
  after(async () => h.stop());

  test('greeting and EHLO keywords as Postfix lists them (CHUNKING last, no STARTTLS without TLS)', async () => {
    const { c, greeting } = await h.open();
    assert.equal(greeting.text, '220 mx.backup.test ESMTP Backstop');
    const r = await c.cmd('EHLO client.test');
    assert.deepEqual(r.lines, [
      '250-mx.backup.test', '250-PIPELINING', '250-SIZE 10240000', '250-VRFY', '250-ETRN',
      '250-ENHANCEDSTATUSCODES', '250-8BITMIME', '250-DSN', '250-SMTPUTF8', '250 CHUNKING',
    ]);
    assert.equal((await c.cmd('QUIT')).text, '221 2.0.0 Bye');
    await c.waitClosed();
  });

  test('a whole transaction: replies, queue file, Received header, log lines', async () => {
    const c = await h.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<sender@client.test>')).text, '250 2.1.0 Ok');
    assert.equal((await c.cmd('RCPT TO:<user@primary.test>')).text, '250 2.1.5 Ok');
    assert.equal((await c.cmd('DATA')).text, '354 End data with <CR><LF>.<CR><LF>');
    c.write('Subject: hi\r\n\r\n..dot line\r\nbody\r\n.\r\n');
    const r = await c.read();
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(r.text);
    assert.ok(m, r.text);
    const id = m[1];
    assert.equal((await c.cmd('QUIT')).code, 221);
    await c.waitClosed();
    const msg = h.sink.messages.find((x) => x.id === id);
    assert.ok(msg);
    assert.deepEqual(h.sink.read(id), msg.content);
    const text = msg.content.toString();
    assert.match(
      text,
      new RegExp(`^Received: from client\\.test \\(unknown \\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby mx\\.backup\\.test \\(Backstop\\) with ESMTP id ${id}\\r\\n\\tfor <user@primary\\.test>; \\w{3}, \\d+ \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d [+-]\\d{4}(?: \\(UTC\\))?\\r\\n`),
    );
    assert.ok(text.endsWith('Subject: hi\r\n\r\n.dot line\r\nbody\r\n'), JSON.stringify(text));
    assert.equal(msg.envelope.sender, 'sender@client.test');
    assert.deepEqual(msg.envelope.recipients, [{ address: 'user@primary.test' }]);
    assert.equal(msg.envelope.client.helo, 'client.test');
    assert.equal(msg.envelope.client.protocol, 'ESMTP');
    await h.waitLog(/^connect from unknown\[127\.0\.0\.1\]$/);
    await h.waitLog(new RegExp(`^${id}: client=unknown\\[127\\.0\\.0\\.1\\]$`));
    await h.waitLog(/^disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5$/);
  });

  test('DSN parameters reach the envelope', async () => {
    const c = await h.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<s@client.test> RET=HDRS ENVID=abc+2Bdef SIZE=100 BODY=8BITMIME SMTPUTF8')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<a@primary.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+40primary.test')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<b@primary.test> NOTIFY=NEVER')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('x\r\n.\r\n');
    const id = /queued as (\w+)/.exec((await c.read()).text)?.[1];
    const env = h.sink.messages.find((m) => m.id === id)?.envelope;
    assert.ok(env);
    assert.equal(env.ret, 'HDRS');
    assert.equal(env.envid, 'abc+def');
    assert.equal(env.body, '8BITMIME');
    assert.equal(env.smtputf8, true);
    assert.deepEqual(env.recipients, [
      { address: 'a@primary.test', notify: ['SUCCESS', 'DELAY'], orcpt: 'rfc822;a@primary.test' },
      { address: 'b@primary.test', notify: ['NEVER'] },
    ]);
    c.close();
  });

  test('a trailing dot in the domain is dropped before the queue, as Postfix rewrites it', async () => {
    const c = await h.ehlo();
    assert.equal((await c.cmd('MAIL FROM:<s@client.test.>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<a@primary.test.>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('x\r\n.\r\n');
    const id = /queued as (\w+)/.exec((await c.read()).text)?.[1];
    const env = h.sink.messages.find((m) => m.id === id)?.envelope;
    assert.equal(env?.sender, 's@client.test');
    assert.deepEqual(env?.recipients, [{ address: 'a@primary.test' }]);
    c.close();
  });

  const cases: Array<{ desc: string; setup?: string[]; cmd: string; expected: string }> = [
    { desc: 'EHLO without name', cmd: 'EHLO', expected: '501 Syntax: EHLO hostname' },
    { desc: 'HELO without name', cmd: 'HELO', expected: '501 Syntax: HELO hostname' },
    { desc: 'HELO', cmd: 'HELO client.test', expected: '250 mx.backup.test' },
    { desc: 'MAIL syntax', cmd: 'MAIL <a@b>', expected: '501 5.5.4 Syntax: MAIL FROM:<address>' },
    { desc: 'MAIL bad address', cmd: 'MAIL FROM:<a b@c>', expected: '501 5.1.7 Bad sender address syntax' },
    { desc: 'MAIL nested', setup: ['MAIL FROM:<a@b.test>'], cmd: 'MAIL FROM:<a@b.test>', expected: '503 5.5.1 Error: nested MAIL command' },
    { desc: 'MAIL SIZE over the limit', cmd: 'MAIL FROM:<a@b.test> SIZE=10240001', expected: '552 5.3.4 Message size exceeds fixed limit' },
    { desc: 'MAIL SIZE syntax', cmd: 'MAIL FROM:<a@b.test> SIZE=x', expected: '501 5.5.4 Bad message size syntax' },
    { desc: 'MAIL unknown parameter', cmd: 'MAIL FROM:<a@b.test> FOO=1', expected: '555 5.5.4 Unsupported option: FOO=1' },
    { desc: 'MAIL RET', cmd: 'MAIL FROM:<a@b.test> RET=ALL', expected: '501 5.5.4 Bad RET parameter syntax' },
    { desc: 'MAIL ENVID', cmd: 'MAIL FROM:<a@b.test> ENVID=a+ZZ', expected: '501 5.5.4 Bad ENVID parameter syntax' },
    { desc: 'MAIL BODY', cmd: 'MAIL FROM:<a@b.test> BODY=BINARYMIME', expected: '555 5.5.4 Unsupported option: BODY=BINARYMIME' },
    { desc: 'null sender', cmd: 'MAIL FROM:<>', expected: '250 2.1.0 Ok' },
    { desc: 'RCPT without MAIL', cmd: 'RCPT TO:<a@b.test>', expected: '503 5.5.1 Error: need MAIL command' },
    { desc: 'RCPT syntax', setup: ['MAIL FROM:<>'], cmd: 'RCPT <a@b>', expected: '501 5.5.4 Syntax: RCPT TO:<address>' },
    { desc: 'RCPT empty', setup: ['MAIL FROM:<>'], cmd: 'RCPT TO:<>', expected: '501 5.1.3 Bad recipient address syntax' },
    { desc: 'RCPT NOTIFY', setup: ['MAIL FROM:<>'], cmd: 'RCPT TO:<a@b.test> NOTIFY=NEVER,DELAY', expected: '501 5.5.4 Error: Bad NOTIFY parameter syntax' },
    { desc: 'RCPT ORCPT', setup: ['MAIL FROM:<>'], cmd: 'RCPT TO:<a@b.test> ORCPT=nosemicolon', expected: '501 5.5.4 Error: Bad ORCPT parameter syntax' },
    { desc: '<postmaster> without domain is accepted', setup: ['MAIL FROM:<>'], cmd: 'RCPT TO:<postmaster>', expected: '250 2.1.5 Ok' },
    { desc: 'RCPT rejected by the engine', setup: ['MAIL FROM:<s@client.test>'], cmd: 'RCPT TO:<x@other.test>', expected: '554 5.7.1 <x@other.test>: Relay access denied' },
    { desc: 'DATA without MAIL', cmd: 'DATA', expected: '503 5.5.1 Error: need RCPT command' },
    { desc: 'DATA without RCPT', setup: ['MAIL FROM:<>'], cmd: 'DATA', expected: '554 5.5.1 Error: no valid recipients' },
    { desc: 'DATA with argument', setup: ['MAIL FROM:<>', 'RCPT TO:<a@primary.test>'], cmd: 'DATA x', expected: '501 5.5.4 Syntax: DATA' },
    { desc: 'RSET', setup: ['MAIL FROM:<>'], cmd: 'RSET', expected: '250 2.0.0 Ok' },
    { desc: 'RSET argument', cmd: 'RSET x', expected: '501 5.5.4 Syntax: RSET' },
    { desc: 'NOOP', cmd: 'NOOP', expected: '250 2.0.0 Ok' },
    { desc: 'VRFY', cmd: 'VRFY <user@primary.test>', expected: '252 2.0.0 <user@primary.test>' },
    { desc: 'VRFY without argument', cmd: 'VRFY', expected: '501 5.5.4 Syntax: VRFY address [SMTPUTF8]' },
    { desc: 'unknown command', cmd: 'WIZ', expected: '500 5.5.2 Error: command not recognized' },
    { desc: 'NUL in a command (a command ends at its NUL, as in Postfix)', cmd: 'NO\0OP', expected: '500 5.5.2 Error: command not recognized' },
    { desc: 'STARTTLS without TLS', cmd: 'STARTTLS', expected: '502 5.5.1 Error: command not implemented' },
    { desc: 'AUTH when not enabled', cmd: 'AUTH PLAIN', expected: '503 5.5.1 Error: authentication not enabled' },
    { desc: 'ETRN eligible domain', cmd: 'ETRN primary.test', expected: '250 Queuing started' },
    { desc: 'ETRN with @', cmd: 'ETRN @primary.test', expected: '250 Queuing started' },
    { desc: 'ETRN domain not eligible', cmd: 'ETRN other.test', expected: '459 <other.test>: service unavailable' },
    { desc: 'ETRN without domain', cmd: 'ETRN', expected: '500 Syntax: ETRN domain' },
    { desc: 'ETRN bad domain', cmd: 'ETRN a..b', expected: '501 Error: invalid parameter syntax' },
    { desc: 'ETRN in a transaction', setup: ['MAIL FROM:<>'], cmd: 'ETRN primary.test', expected: '503 Error: MAIL transaction in progress' },
  ];
  for (const tc of cases) {
    test(`${tc.desc}: ${tc.expected}`, async () => {
      const c = await h.ehlo();
      for (const s of tc.setup ?? []) assert.ok((await c.cmd(s)).code < 400, s);
      assert.equal((await c.cmd(tc.cmd)).text, tc.expected);
      c.close();
    });
  }

  test('ETRN hands the domain to the flusher', () => {
    assert.ok(flushed.includes('primary.test'));
    assert.ok(flushed.includes('other.test'));
  });

  test('raw routing forms reach the restriction engine as given', async () => {
    const c = await h.ehlo();
    await c.cmd('MAIL FROM:<s@client.test>');
    for (const a of ['a%b@backup.test', 'b!a@backup.test', '@x.test:a@b.test', '"a@b"@backup.test']) {
      assert.equal((await c.cmd(`RCPT TO:<${a}>`)).code, 250, a);
      assert.ok(h.engine.seen.some((s) => s.stage === 'rcpt' && s.recipient === a), a);
    }
    c.close();
  });

  test('NOQUEUE reject log line and the disconnect counts', async () => {
    const c = await h.ehlo();
    await c.cmd('MAIL FROM:<s@client.test>');
    await c.cmd('RCPT TO:<x@other.test>');
    await c.cmd('QUIT');
    await c.waitClosed();
    await h.waitLog(/^NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 <x@other\.test>: Relay access denied; from=<s@client\.test> to=<x@other\.test> proto=ESMTP helo=<client\.test>$/);
    await h.waitLog(/^disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=0\/1 quit=1 commands=3\/4$/);
  });

  test('lost connection after DATA is logged and nothing is queued', async () => {
    const before = h.sink.files().length;
    const c = await h.ehlo();
    await c.cmd('MAIL FROM:<s@client.test>');
    await c.cmd('RCPT TO:<u@primary.test>');
    await c.cmd('DATA');
    c.write('partial message\r\n');
    await sleep(50);
    c.close();
    await h.waitLog(/^lost connection after DATA \(\d+ bytes\) from unknown\[127\.0\.0\.1\]$/);
    await sleep(50);
    assert.equal(h.sink.files().length, before);
  });

  test('the client name comes from the dns option', async () => {
    const h2 = await startHarness({ dns: { clientName: async () => ({ name: 'client.example', reverseName: 'client.example' }) } });
    const c = await h2.ehlo();
    await c.cmd('QUIT');
    await h2.waitLog(/^connect from client\.example\[127\.0\.0\.1\]$/);
    await h2.stop();
  });
});
