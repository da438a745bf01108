// smtpd limits and hygiene: timeouts (idle and one-byte-at-a-time), recipient limit, connection
// count/rate, hard error limit, pipelining synchronization, talk before the greeting, SMTP
// smuggling variants, bare LF handling, SIZE during DATA, queue failures, reload.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config } from '../../src/config/index.js';
import { startHarness, TestEngine, BASE_MAIN_CF } from './harness.js';
import { RawClient } from '../helpers/smtp-client.js';
import { SmtpError, reply } from '../../src/mail/index.js';
import { sleep } from '../helpers/net.js';


async function transaction(c: RawClient): Promise<void> {
  assert.equal((await c.cmd('MAIL FROM:<s@client.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<u@primary.test>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
}

describe('smtpd limits', () => {
  test('smtpd_timeout: idle client gets 421 4.4.2 and a timeout log line', async () => {
    const h = await startHarness({ mainCf: 'smtpd_timeout = 1s\n' });
    const c = await h.ehlo();
    const r = await c.read(3000);
    assert.equal(r.text, '421 4.4.2 mx.backup.test Error: timeout exceeded');
    await c.waitClosed();
    await h.waitLog(/^timeout after EHLO from unknown\[127\.0\.0\.1\]$/);
    await h.stop();
  });

  test('a client sending one byte at a time cannot outlast smtpd_timeout', async () => {
    const h = await startHarness({ mainCf: 'smtpd_timeout = 1s\n' });
    const { c } = await h.open();
    const start = Date.now();
    const trickle = setInterval(() => { if (!c.closed) c.write('N'); }, 200);
    const r = await c.read(4000);
    clearInterval(trickle);
    assert.equal(r.text, '421 4.4.2 mx.backup.test Error: timeout exceeded');
    assert.ok(Date.now() - start < 2500);
    await h.stop();
  });

  test('smtpd_recipient_limit: 452 4.5.3 Error: too many recipients', async () => {
    const h = await startHarness({ mainCf: 'smtpd_recipient_limit = 2\n' });
    const c = await h.ehlo();
    await c.cmd('MAIL FROM:<>');
    assert.equal((await c.cmd('RCPT TO:<a@p.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<b@p.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<c@p.test>')).text, '452 4.5.3 Error: too many recipients');
    c.close();
    await h.stop();
  });

  test('smtpd_client_connection_count_limit: 421 4.7.0 too many connections', async () => {
    const h = await startHarness({ mainCf: 'smtpd_client_connection_count_limit = 2\n' });
    const a = await h.open();
    const b = await h.open();
    const { c, greeting } = await h.open();
    assert.equal(greeting.text, '421 4.7.0 mx.backup.test Error: too many connections from 127.0.0.1');
    await c.waitClosed();
    await h.waitLog(/Connection concurrency limit exceeded: 3 from unknown\[127\.0\.0\.1\] for service 127\.0\.0\.1:0/);
    a.c.close();
    await sleep(100);
    const d = await h.open();
    assert.equal(d.greeting.code, 220);
    for (const x of [b.c, d.c]) x.close();
    await h.stop();
  });

  test('exempt networks are not limited', async () => {
    const h = await startHarness({ mainCf: 'smtpd_client_connection_count_limit = 1\nsmtpd_client_event_limit_exceptions = 127.0.0.0/8\n' });
    const a = await h.open();
    const b = await h.open();
    assert.equal(b.greeting.code, 220);
    a.c.close();
    b.c.close();
    await h.stop();
  });

  test('exempt networks given as a cidr: table (mynetworks, any form) are not limited', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'backstop-anvil-'));
    for (const [table, exempt] of [['127.0.0.0/8 OK\n', true], ['192.0.2.0/24 OK\n', false]] as const) {
      writeFileSync(join(dir, 'mynetworks.cidr'), table);
      const h = await startHarness({
        mainCf: `mynetworks = cidr:${join(dir, 'mynetworks.cidr')}\nsmtpd_client_connection_count_limit = 1\nsmtpd_client_event_limit_exceptions = $mynetworks\n`,
      });
      const a = await h.open();
      const b = await h.open();
      if (exempt) assert.equal(b.greeting.code, 220, table);
      else assert.equal(b.greeting.text, '421 4.7.0 mx.backup.test Error: too many connections from 127.0.0.1');
      a.c.close();
      b.c.close();
      await h.stop();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('smtpd_client_connection_rate_limit: 421 4.7.0 too many connections', async () => {
    const h = await startHarness({ mainCf: 'smtpd_client_connection_rate_limit = 2\n' });
    for (let i = 0; i < 2; i++) {
      const { c, greeting } = await h.open();
      assert.equal(greeting.code, 220);
      c.close();
    }
    const { c, greeting } = await h.open();
    assert.equal(greeting.text, '421 4.7.0 mx.backup.test Error: too many connections from 127.0.0.1');
    c.close();
    await h.waitLog(/Connection rate limit exceeded: 3 from unknown\[127\.0\.0\.1\]/);
    await h.stop();
  });

  test('smtpd_hard_error_limit: 421 4.7.0 too many errors', async () => {
    const h = await startHarness({ mainCf: 'smtpd_hard_error_limit = 3\n' });
    const c = await h.ehlo();
    for (let i = 0; i < 3; i++) assert.equal((await c.cmd('BOGUS')).code, 500);
    // As Postfix: the limit is checked before the next command is read, so 421 comes at once.
    assert.equal((await c.read()).text, '421 4.7.0 mx.backup.test Error: too many errors');
    await c.waitClosed();
    await h.waitLog(/^too many errors after UNKNOWN from unknown\[127\.0\.0\.1\]$/);
    await h.waitLog(/^disconnect from unknown\[127\.0\.0\.1\] ehlo=1 unknown=0\/3 commands=1\/4$/);
    await h.stop();
  });

  test('strict_smtputf8 = yes: a non-ASCII address needs SMTPUTF8 (553 5.6.7); with no (the default) it is taken', async () => {
    const strict = await startHarness({ mainCf: 'strict_smtputf8 = yes\n' });
    const c = await strict.ehlo();
    assert.equal((await c.cmd(Buffer.from('MAIL FROM:<j\u00f6e@client.test>', 'utf8'))).text, '553 5.6.7 Must declare SMTPUTF8 to send unicode address');
    assert.equal((await c.cmd(Buffer.from('MAIL FROM:<j\u00f6e@client.test> SMTPUTF8', 'utf8'))).text, '250 2.1.0 Ok');
    c.close();
    await strict.stop();
    const lax = await startHarness();
    const d = await lax.ehlo();
    assert.equal((await d.cmd(Buffer.from('MAIL FROM:<j\u00f6e@client.test>', 'utf8'))).text, '250 2.1.0 Ok');
    d.close();
    await lax.stop();
  });

  test('smtpd_soft_error_limit + smtpd_error_sleep_time delay replies', async () => {
    const h = await startHarness({ mainCf: 'smtpd_soft_error_limit = 1\nsmtpd_error_sleep_time = 1s\n' });
    const c = await h.ehlo();
    const t0 = Date.now();
    await c.cmd('BOGUS');
    assert.ok(Date.now() - t0 >= 900, 'first error reply delayed');
    c.close();
    await h.stop();
  });

  test('line_length_limit: an over-long command is cut and logged, the rest skipped, memory stays bounded', async () => {
    const h = await startHarness({ mainCf: 'line_length_limit = 100\n' });
    const c = await h.ehlo();
    c.write('NOOP ' + 'x'.repeat(5000));
    await sleep(50);
    c.write('\r\n');
    // Postfix: the first line_length_limit bytes are the command, the rest of the line is skipped.
    assert.equal((await c.read()).text, '250 2.0.0 Ok');
    await h.waitLog(/^warning: unknown\[127\.0\.0\.1\]: request longer than 100: NOOP x{25}\.\.\.$/);
    assert.equal((await c.cmd('NOOP')).code, 250);
    c.close();
    await h.stop();
  });

  test('SIZE during DATA: an oversized message gets 552 5.3.4, never 250, and leaves no file', async () => {
    const h = await startHarness({ mainCf: 'message_size_limit = 2000\n' });
    const c = await h.ehlo();
    await transaction(c);
    c.write(('x'.repeat(70) + '\r\n').repeat(100) + '.\r\n');
    assert.equal((await c.read()).text, '552 5.3.4 Error: message file too big');
    await h.waitLog(/^warning: [0-9A-F]+: queue file size limit exceeded$/);
    assert.equal((await c.cmd('NOOP')).code, 250);
    assert.deepEqual(h.sink.files(), []);
    c.close();
    await h.stop();
  });

  test('a queue failure is answered with its SmtpError reply', async () => {
    const h = await startHarness();
    h.sink.failWith = new SmtpError(reply(452, '4.3.1', 'Insufficient system storage'));
    const c = await h.ehlo();
    await transaction(c);
    c.write('x\r\n.\r\n');
    assert.equal((await c.read()).text, '452 4.3.1 Insufficient system storage');
    h.sink.failWith = new Error('disk exploded');
    await transaction(c);
    c.write('x\r\n.\r\n');
    assert.equal((await c.read()).text, '451 4.3.0 Error: queue file write error');
    c.close();
    await h.stop();
  });

  test('end-of-data and data restrictions are applied', async () => {
    const engine = new TestEngine(new Set(), { 'end-of-data': { action: 'reject', reply: reply(550, '5.7.1', 'Message content rejected') } });
    const h = await startHarness({ engine });
    const c = await h.ehlo();
    await transaction(c);
    c.write('x\r\n.\r\n');
    assert.equal((await c.read()).text, '550 5.7.1 Message content rejected');
    assert.deepEqual(h.sink.files(), []);
    c.close();
    await h.stop();
  });
});

describe('smtpd pipelining', () => {
  test('pipelined MAIL/RCPT after EHLO is fine', async () => {
    const h = await startHarness();
    const c = await h.ehlo();
    c.write('MAIL FROM:<s@client.test>\r\nRCPT TO:<a@p.test>\r\nRCPT TO:<b@p.test>\r\nDATA\r\n');
    for (const code of [250, 250, 250, 354]) assert.equal((await c.read()).code, code);
    c.write('hello\r\n.\r\nQUIT\r\n');
    assert.equal((await c.read()).code, 250);
    assert.equal((await c.read()).code, 221);
    await h.stop();
  });

  test('the next message pipelined behind the end of data (RFC 2920, as Backstop\'s own client sends it) is answered in order', async () => {
    const h = await startHarness();
    const c = await h.ehlo();
    c.write('MAIL FROM:<s@client.test>\r\nRCPT TO:<a@p.test>\r\nDATA\r\n');
    for (const code of [250, 250, 354]) assert.equal((await c.read()).code, code);
    c.write('first\r\n.\r\nRSET\r\nMAIL FROM:<s@client.test>\r\nRCPT TO:<b@p.test>\r\nDATA\r\n');
    assert.match((await c.read()).text, /^250 2\.0\.0 Ok: queued as /);
    for (const code of [250, 250, 250, 354]) assert.equal((await c.read()).code, code);
    c.write('second\r\n.\r\nQUIT\r\n');
    assert.match((await c.read()).text, /^250 2\.0\.0 Ok: queued as /);
    assert.equal((await c.read()).code, 221);
    await h.stop();
  });

  test('message text pipelined after a rejected RCPT and DATA is not run as commands', async () => {
    const h = await startHarness({ engine: new TestEngine(new Set(['x@other.test'])) });
    const c = await h.ehlo();
    c.write('MAIL FROM:<s@client.test>\r\nRCPT TO:<x@other.test>\r\nDATA\r\nRSET\r\nMAIL FROM:<evil@x.test>\r\n.\r\n');
    assert.equal((await c.read()).code, 250);
    assert.equal((await c.read()).code, 554);
    assert.equal((await c.read()).text, '554 5.5.0 Error: SMTP protocol synchronization');
    await c.waitClosed();
    assert.equal(c.pending(), '');
    await h.waitLog(/^improper command pipelining after DATA from unknown\[127\.0\.0\.1\]: RSET\\r\\nMAIL FROM:<evil@x\.test>\\r\\n\.\\r\\n$/);
    await h.stop();
  });

  test('EHLO followed by more commands in one packet: 554 5.5.0', async () => {
    const h = await startHarness();
    const { c } = await h.open();
    c.write('EHLO client.test\r\nMAIL FROM:<a@b.test>\r\n');
    assert.equal((await c.read()).text, '554 5.5.0 Error: SMTP protocol synchronization');
    await c.waitClosed();
    await h.stop();
  });

  test('commands before the greeting: 554 5.5.0 after the banner, then disconnect', async () => {
    const h = await startHarness({
      dns: { clientName: () => new Promise((r) => setTimeout(() => r({ name: 'unknown', reverseName: 'unknown' }), 150)) },
    });
    const c = await RawClient.connect(h.port);
    c.write('EHLO early.test\r\nQUIT\r\n');
    assert.equal((await c.read()).code, 220);
    assert.equal((await c.read()).text, '554 5.5.0 Error: SMTP protocol synchronization');
    await c.waitClosed();
    await h.waitLog(/^improper command pipelining after CONNECT from unknown\[127\.0\.0\.1\]: $/);
    await h.stop();
  });

  test('with smtpd_forbid_unauth_pipelining = no, early commands are answered in order', async () => {
    const h = await startHarness({
      mainCf: 'smtpd_forbid_unauth_pipelining = no\n',
      dns: { clientName: () => new Promise((r) => setTimeout(() => r({ name: 'unknown', reverseName: 'unknown' }), 150)) },
    });
    const c = await RawClient.connect(h.port);
    c.write('HELO early.test\r\nNOOP\r\n');
    assert.equal((await c.read()).code, 220);
    assert.equal((await c.read()).text, '250 mx.backup.test');
    assert.equal((await c.read()).text, '250 2.0.0 Ok');
    c.close();
    await h.stop();
  });
});

describe('smtpd smuggling and line endings', () => {
  // Each input is the DATA content as sent; the message must end only at CRLF.CRLF, be one
  // message, and arrive with every line ending as CRLF.
  const variants: Array<{ desc: string; body: string; expect: string }> = [
    { desc: '\\n.\\r\\n does not end DATA', body: 'a\n.\r\nMAIL FROM:<x@y>\r\nb\r\n.\r\n', expect: 'a\r\n.\r\nMAIL FROM:<x@y>\r\nb\r\n' },
    { desc: '\\r.\\r\\n does not end DATA', body: 'a\r.\r\nRCPT TO:<x@y>\r\n.\r\n', expect: 'a\r\n.\r\nRCPT TO:<x@y>\r\n' },
    { desc: '\\r\\n.\\n does not end DATA', body: 'a\r\n.\nDATA\r\n.\r\n', expect: 'a\r\n.\r\nDATA\r\n' },
    { desc: '\\n.\\n does not end DATA', body: 'a\n.\nQUIT\r\n.\r\n', expect: 'a\r\n.\r\nQUIT\r\n' },
    { desc: 'bare LF and bare CR become CRLF', body: 'one\ntwo\rthree\r\n.\r\n', expect: 'one\r\ntwo\r\nthree\r\n' },
  ];
  for (const v of variants) {
    test(v.desc, async () => {
      const h = await startHarness();
      const c = await h.ehlo();
      await transaction(c);
      c.write(v.body);
      const r = await c.read();
      assert.match(r.text, /^250 2\.0\.0 Ok: queued as /);
      assert.equal((await c.cmd('QUIT')).code, 221);
      assert.equal(h.sink.messages.length, 1);
      const content = h.sink.messages[0].content.toString('latin1');
      assert.equal(content.slice(content.indexOf('\r\n', content.indexOf('\tfor <')) + 2), v.expect);
      await h.stop();
    });
  }

  test('smtpd_forbid_bare_newline = reject: 550 5.5.2 for a bare LF in DATA, nothing queued', async () => {
    const h = await startHarness({ mainCf: 'smtpd_forbid_bare_newline = reject\n' });
    const c = await h.ehlo();
    await transaction(c);
    c.write('a\nb\r\n.\r\n');
    assert.equal((await c.read()).text, '550 5.5.2 mx.backup.test Error: bare <LF> received');
    assert.deepEqual(h.sink.files(), []);
    assert.equal((await c.cmd('NOOP')).code, 250);
    c.write('NOOP\n');
    assert.equal((await c.read()).text, '550 5.5.2 mx.backup.test Error: bare <LF> received');
    c.close();
    await h.stop();
  });

  test('normalize (default): a command ending in a bare LF is read as if it ended in CRLF', async () => {
    const h = await startHarness();
    const c = await h.ehlo();
    c.write('NOOP\n');
    assert.equal((await c.read()).text, '250 2.0.0 Ok');
    c.close();
    await h.stop();
  });
});

describe('smtpd reload', () => {
  test('new sessions use the new config, running sessions keep theirs, none dropped', async () => {
    const made: TestEngine[] = [];
    const h = await startHarness({ engine: () => { const e = new TestEngine(); made.push(e); return e; } });
    const old = await h.ehlo();
    h.smtpd.reload(Config.fromText(BASE_MAIN_CF + 'smtpd_banner = $myhostname ESMTP reloaded\nmessage_size_limit = 500\n'));
    const { c, greeting } = await h.open();
    assert.equal(greeting.text, '220 mx.backup.test ESMTP reloaded');
    assert.match((await c.cmd('EHLO x.test')).text, /250-SIZE 500\n/);
    // The old session still runs on the old settings (limit 10240000) and engine.
    await transaction(old);
    old.write('x'.repeat(600) + '\r\n.\r\n');
    assert.match((await old.read()).text, /^250 2\.0\.0 Ok: queued as/);
    assert.equal(made.length, 2);
    assert.equal(made[0].closed, false);
    await old.cmd('QUIT');
    await old.waitClosed();
    await sleep(50);
    assert.equal(made[0].closed, true, 'old engine closed after its last session');
    c.close();
    await h.stop();
  });
});
