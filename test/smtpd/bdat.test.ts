// CHUNKING / BDAT (RFC 3030) and the protections against non-SMTP clients, over a raw socket
// against the real smtpd: chunks are bytes (binary, bare CR/LF, command-looking lines), a chunk
// never runs as commands, pipelined BDAT, size limits, DATA/BDAT mixing, malformed BDAT hangs up,
// CHUNKING removed by smtpd_discard_ehlo_keywords; smtpd_forbidden_commands and header lines end
// the session with 221 2.7.0. Replies and log lines are Postfix 3.7's (test/fidelity compares
// them with a real Postfix).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, TestEngine, type Harness } from './harness.js';
import { compileCommandList, isHeader, escapeBytes } from '../../src/smtpd/nonsmtp.js';

async function transaction(h: Harness) {
  const c = await h.ehlo();
  assert.equal((await c.cmd('MAIL FROM:<sender@client.test>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<user@primary.test>')).code, 250);
  return c;
}

function stored(h: Harness, reply: string): string {
  const m = /queued as ([0-9A-F]+)$/.exec(reply);
  assert.ok(m, reply);
  const msg = h.sink.messages.find((x) => x.id === m[1]);
  assert.ok(msg, `message ${m[1]} stored`);
  return msg.content.toString('latin1');
}

describe('smtpd BDAT', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ engine: new TestEngine(new Set(['x@other.test'])), mainCf: 'message_size_limit = 2000\n' });
  });
  after(async () => h.stop());

  test('EHLO offers CHUNKING; BDAT n LAST queues the chunk', async () => {
    const c = await h.ehlo();
    c.close();
    const d = await transaction(h);
    d.write('BDAT 40 LAST\r\nSubject: bdat\r\n\r\naaaaaaaaaaaaaaaaaaaaa\r\n');
    const r = await d.read();
    assert.match(r.text, /^250 2\.0\.0 Ok: 40 bytes queued as [0-9A-F]+$/);
    assert.ok(stored(h, r.text).endsWith('\r\nSubject: bdat\r\n\r\naaaaaaaaaaaaaaaaaaaaa\r\n'));
    assert.equal((await d.cmd('QUIT')).code, 221);
    await h.waitLog(/disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 bdat=1 quit=1 commands=5$/);
  });

  test('a chunk holding commands and a dot line is data, never commands (no smuggling)', async () => {
    const c = await transaction(h);
    const payload = 'Subject: s\r\n\r\nRSET\r\nMAIL FROM:<evil@x.test>\r\n.\r\nQUIT\r\n';
    c.write(`BDAT ${payload.length} LAST\r\n${payload}`);
    const r = await c.read();
    assert.match(r.text, /^250 2\.0\.0 Ok: \d+ bytes queued as /);
    assert.ok(stored(h, r.text).endsWith(payload));
    assert.equal((await c.cmd('NOOP')).text, '250 2.0.0 Ok');
    c.close();
  });

  test('binary content, bare LF and bare CR: counted as Postfix counts lines, stored with CRLF', async () => {
    const c = await transaction(h);
    c.write(Buffer.concat([Buffer.from('BDAT 12 LAST\r\n'), Buffer.from([0x53, 0x3a, 0x20, 0x78, 0x0a, 0x0a, 0x00, 0xff, 0x0d, 0x61, 0x0a, 0x62])]));
    const r = await c.read();
    assert.match(r.text, /^250 2\.0\.0 Ok: 17 bytes queued as /);
    assert.ok(stored(h, r.text).endsWith('S: x\r\n\r\n\x00\xff\r\na\r\nb\r\n'));
    c.close();
  });

  test('pipelined MAIL, RCPT, BDAT chunks and QUIT in one write', async () => {
    const c = await h.ehlo();
    c.write('MAIL FROM:<s@client.test>\r\nRCPT TO:<user@primary.test>\r\nBDAT 5\r\nab\r\nXBDAT 4 LAST\r\ncd\r\nQUIT\r\n');
    assert.equal((await c.read()).code, 250);
    assert.equal((await c.read()).code, 250);
    assert.equal((await c.read()).text, '250 2.0.0 Ok: 5 bytes');
    const r = await c.read();
    assert.match(r.text, /^250 2\.0\.0 Ok: 9 bytes queued as /);
    assert.ok(stored(h, r.text).endsWith('\r\nab\r\nXcd\r\n'));
    assert.equal((await c.read()).code, 221);
    await c.waitClosed();
  });

  test('refusals still read the chunk: no MAIL, no valid recipient, null BDAT, then discarded until LAST', async () => {
    const c = await h.ehlo();
    c.write('BDAT 4 LAST\r\nQUIT');
    assert.equal((await c.read()).text, '503 5.5.1 Error: need RCPT command');
    assert.equal((await c.cmd('MAIL FROM:<s@client.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<x@other.test>')).code, 554);
    c.write('BDAT 4\r\nRSET');
    assert.equal((await c.read()).text, '554 5.5.1 Error: no valid recipients');
    c.write('BDAT 3\r\nabc');
    assert.equal((await c.read()).text, '551 5.0.0 Discarded 3 bytes after earlier error');
    c.write('BDAT 2 LAST\r\nab');
    assert.equal((await c.read()).text, '551 5.0.0 Discarded 2 bytes after earlier error');
    assert.equal((await c.cmd('NOOP')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<s@client.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<user@primary.test>')).code, 250);
    c.write('BDAT 0\r\n');
    assert.equal((await c.read()).text, '551 5.7.1 Null BDAT request');
    await h.waitLog(/^warning: NOQUEUE: null BDAT request from unknown\[127\.0\.0\.1\]$/);
    c.close();
  });

  test('message_size_limit: a chunk that would pass it is refused before it is read into the queue', async () => {
    const c = await transaction(h);
    c.write(`BDAT 2500\r\n${'x'.repeat(2500)}`);
    assert.equal((await c.read()).text, '552 5.3.4 Chunk exceeds message size limit');
    await h.waitLog(/^warning: NOQUEUE: BDAT request from unknown\[127\.0\.0\.1\] exceeds message size limit$/);
    c.write('BDAT 4 LAST\r\nab\r\n');
    assert.equal((await c.read()).text, '551 5.0.0 Discarded 4 bytes after earlier error');
    c.close();
  });

  test('message_size_limit: content past it (bare LF lines count 2 bytes each) ends in 552 message file too big, nothing kept', async () => {
    const before = h.sink.messages.length;
    const c = await transaction(h);
    c.write(`BDAT 300\r\n${'y\r\n'.repeat(100)}`);
    assert.equal((await c.read()).text, '250 2.0.0 Ok: 300 bytes');
    // 1500 bytes, but 750 lines of 1 + 2 bytes as Postfix counts them: 2550 in all, over 2000.
    c.write(`BDAT 1500\r\n${'z\n'.repeat(750)}`);
    assert.equal((await c.read()).text, '552 5.3.4 Error: message file too big');
    await h.waitLog(/^warning: [0-9A-F]+: queue file size limit exceeded$/);
    c.write('BDAT 3 LAST\r\nend');
    assert.equal((await c.read()).text, '551 5.0.0 Discarded 3 bytes after earlier error');
    assert.equal(h.sink.messages.length, before);
    c.close();
  });

  test('DATA, MAIL and RCPT after BDAT are refused; RSET ends the BDAT transaction', async () => {
    const c = await transaction(h);
    c.write('BDAT 4\r\nab\r\n');
    assert.equal((await c.read()).text, '250 2.0.0 Ok: 4 bytes');
    assert.equal((await c.cmd('DATA')).text, '503 5.5.1 Error: DATA after BDAT');
    assert.equal((await c.cmd('RCPT TO:<user@primary.test>')).text, '503 5.5.1 Error: RCPT after BDAT');
    assert.equal((await c.cmd('MAIL FROM:<s@client.test>')).text, '503 5.5.1 Error: nested MAIL command');
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<s@client.test>')).code, 250);
    c.close();
  });

  test('malformed BDAT: 521 and the session ends (the next input would be raw content)', async () => {
    for (const bad of ['BDAT', 'BDAT 12x LAST', 'BDAT 4 FIRST', 'BDAT 1 2 3']) {
      const c = await transaction(h);
      c.write(`${bad}\r\n`);
      assert.equal((await c.read()).text, '521 5.5.4 Syntax: BDAT count [LAST]', bad);
      await c.waitClosed();
    }
    await h.waitLog(/^warning: NOQUEUE: malformed BDAT command syntax from unknown\[127\.0\.0\.1\]: BDAT 4 FIRST$/);
  });

  test('a client that leaves in the middle of a chunk: nothing kept, lost connection after BDAT (N bytes)', async () => {
    const before = h.sink.messages.length;
    const c = await transaction(h);
    c.write('BDAT 100 LAST\r\nshort');
    await new Promise((r) => setTimeout(r, 100));
    c.close();
    await h.waitLog(/^lost connection after BDAT \(5 bytes\) from unknown\[127\.0\.0\.1\]$/);
    await h.waitLog(/ehlo=1 mail=1 rcpt=1 bdat=0\/1 commands=3\/4$/);
    assert.equal(h.sink.messages.length, before);
  });
});

describe('smtpd CHUNKING removed by smtpd_discard_ehlo_keywords', () => {
  test('not offered, and BDAT is answered 521 5.5.1 and the session ends', async () => {
    const h = await startHarness({ mainCf: 'smtpd_discard_ehlo_keywords = chunking\n' });
    const { c } = await h.open();
    const r = await c.cmd('EHLO client.test');
    assert.ok(!r.lines.some((l) => /CHUNKING/.test(l)), r.lines.join('|'));
    assert.equal((await c.cmd('MAIL FROM:<s@client.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<user@primary.test>')).code, 250);
    c.write('BDAT 3 LAST\r\nabc');
    assert.equal((await c.read()).text, '521 5.5.1 Error: command not implemented');
    await c.waitClosed();
    await h.stop();
  });
});

describe('smtpd non-SMTP clients', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => h.stop());

  const cases = [
    { desc: 'HTTP GET', line: 'GET / HTTP/1.0', log: 'GET / HTTP/1.0' },
    { desc: 'HTTP POST, lower case', line: 'post /form HTTP/1.1', log: 'post /form HTTP/1.1' },
    { desc: 'proxy CONNECT', line: 'CONNECT 127.0.0.1:25 HTTP/1.0', log: 'CONNECT 127.0.0.1:25 HTTP/1.0' },
    { desc: 'a header line', line: 'Subject: hello', log: 'Subject: hello' },
    { desc: 'not starting with a capital letter', line: '123 go', log: '123 go' },
  ];
  for (const k of cases) {
    test(`${k.desc}: 221 2.7.0 and the session ends, logged as a non-SMTP command`, async () => {
      const { c } = await h.open();
      c.write(`${k.line}\r\n`);
      assert.equal((await c.read()).text, '221 2.7.0 Error: I can break rules, too. Goodbye.');
      await c.waitClosed();
      await h.waitLog(new RegExp(`^warning: non-SMTP command from unknown\\[127\\.0\\.0\\.1\\]: ${k.log.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`));
    });
  }

  test('an unknown command that is not listed: 500 5.5.2 and the session goes on', async () => {
    const { c } = await h.open();
    assert.equal((await c.cmd('FOOBAR')).text, '500 5.5.2 Error: command not recognized');
    assert.equal((await c.cmd('NOOP')).code, 250);
    c.close();
  });

  test('smtpd_forbidden_commands parsing: words, inline regexp, bad table type', () => {
    const l = compileCommandList('CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}}');
    for (const w of ['GET', 'get', 'CONNECT', '1abc', '\x16\x03']) assert.ok(l.matches(w), w);
    for (const w of ['HELP', 'FOOBAR', 'ehlo']) assert.ok(!l.matches(w), w);
    assert.ok(!compileCommandList('').matches('GET'));
    assert.throws(() => compileCommandList('hash:/etc/postfix/x'), /smtpd_forbidden_commands: unsupported table "hash:\/etc\/postfix\/x"/);
    assert.ok(isHeader('Subject:') && isHeader('X-Foo:') && isHeader('From :x') && !isHeader('MAIL') && !isHeader('a b:'));
    assert.equal(escapeBytes(Buffer.from([0x16, 0x03, 0x0d, 0x0a, 0x41, 0x5c])), '\\026\\003\\r\\nA\\\\');
  });
});
