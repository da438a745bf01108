// Protocol abuse against the real `backstop start` (issue 6, Security): over-long commands, NUL
// and 8-bit bytes in commands, talk before the greeting, STARTTLS command injection, too many
// recipients, too many errors, too many connections from one address, a slowloris sender. Each
// case asserts the exact replies, and while it runs a well-behaved client on another loopback
// address completes a whole transaction (250 queued) in normal time: other sessions unaffected.
// One server for all cases, with short limits in main.cf. Trusts test/helpers and harness.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startDnsServer, type TestDnsServer } from '../helpers/dnsserver.js';
import { makeTestCert, startSink, type Sink, type TestCert } from '../helpers/sink.js';
import { freePort, sleep } from '../helpers/net.js';
import { RawClient } from '../helpers/smtp-client.js';
import { mainCf, makeConfigDir, startBackstop, worldZone, type Backstop } from './harness.js';

// Source addresses (loopback): the well-behaved client, the abusers that need their own.
const GOOD_IP = '127.0.0.7';
const PREGREET_IP = '127.0.0.8';
const FLOOD_IP = '127.0.0.9';
const HOST = 'mx2.backup.test';

/** A client from `ip` (another loopback address), 5 s per wait. */
function connectFrom(ip = '127.0.0.1'): Promise<RawClient> {
  return RawClient.connect(port, '127.0.0.1', { localAddress: ip, timeoutMs: 5000 });
}

let dns: TestDnsServer;
let sink: Sink;
let cert: TestCert;
let server: Backstop;
let port: number;
let dir: string;
let goodRuns = 0;
let goodMaxMs = 0;

before(async () => {
  // The pre-greeting client's reverse lookup never answers: its greeting waits for the DNS
  // timeout, so what it sends first certainly arrives before the greeting.
  dns = await startDnsServer({ ...worldZone(), '8.0.0.127.in-addr.arpa': 'timeout' });
  const primaryPort = await freePort('127.0.0.2');
  sink = await startSink({ host: '127.0.0.2', port: primaryPort });
  cert = makeTestCert();
  port = await freePort();
  dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort, [
      'smtpd_timeout = 3s',
      'smtpd_hard_error_limit = 5',
      'smtpd_recipient_limit = 5',
      'smtpd_client_connection_count_limit = 5',
      'smtpd_error_sleep_time = 0s',
      'smtpd_tls_security_level = may',
      `smtpd_tls_cert_file = ${cert.certFile}`,
      `smtpd_tls_key_file = ${cert.certFile.replace(/cert\.pem$/, 'key.pem')}`,
    ]),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  server = await startBackstop(dir, port);
});

after(async () => {
  console.log(`abuse: well-behaved transactions during abuse: ${goodRuns}, slowest ${goodMaxMs} ms`);
  await server?.stop();
  await sink?.close();
  await dns?.close();
  cert?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A well-behaved client from GOOD_IP: one whole transaction; returns the end-of-data reply and the time taken. */
async function goodSession(): Promise<{ reply: string; ms: number }> {
  const t0 = Date.now();
  const c = await connectFrom(GOOD_IP);
  try {
    assert.match(await c.readText(), /^220 /);
    assert.match(await c.say('EHLO good.test'), /^250-/);
    assert.equal(await c.say('MAIL FROM:<good@sender.test>'), '250 2.1.0 Ok');
    assert.equal(await c.say('RCPT TO:<alice@primary.test>'), '250 2.1.5 Ok');
    assert.equal(await c.say('DATA'), '354 End data with <CR><LF>.<CR><LF>');
    const reply = await c.say('Subject: good\r\n\r\nwell behaved\r\n.');
    assert.match(await c.say('QUIT'), /^221 /);
    return { reply, ms: Date.now() - t0 };
  } finally {
    c.close();
  }
}

/** Run an abuse case with a well-behaved transaction in the middle of it. */
async function during(t: { diagnostic(m: string): void }, abuse: () => Promise<void>, goodAfterMs = 200): Promise<void> {
  const good = (async () => {
    await sleep(goodAfterMs);
    return goodSession();
  })();
  const [, g] = await Promise.all([abuse(), good]);
  assert.match(g.reply, /^250 2\.0\.0 Ok: queued as /);
  assert.ok(g.ms < 2000, `well-behaved transaction took ${g.ms} ms`);
  goodRuns++;
  goodMaxMs = Math.max(goodMaxMs, g.ms);
  t.diagnostic(`well-behaved transaction alongside: ${g.ms} ms`);
}

async function ehlo(ip = '127.0.0.1'): Promise<RawClient> {
  const c = await connectFrom(ip);
  assert.match(await c.readText(), /^220 /);
  assert.match(await c.say('EHLO abuser.test'), /^250-/);
  return c;
}

test('over-long command: cut at line_length_limit as Postfix does, the session continues', async (t) => {
  await during(t, async () => {
    const c = await ehlo();
    try {
      // The first 2048 bytes are the command; the rest of the line is skipped (and logged).
      assert.equal(await c.say('NOOP ' + 'x'.repeat(3000)), '250 2.0.0 Ok');
      assert.equal(await c.say(`MAIL FROM:<${'a'.repeat(5000)}@sender.test>`), '501 5.1.7 Bad sender address syntax');
      // 2048 bytes plus CRLF is still a command (line_length_limit default 2048).
      assert.equal(await c.say('NOOP' + ' '.repeat(2044)), '250 2.0.0 Ok');
      assert.equal(await c.say('NOOP'), '250 2.0.0 Ok');
      assert.match(await c.say('QUIT'), /^221 2\.0\.0 /);
    } finally {
      c.close();
    }
  });
});

test('over-long lines in DATA (10,000 and 100,000 bytes): accepted, every byte delivered', async (t) => {
  const long1 = 'y'.repeat(10_000);
  const long2 = 'z'.repeat(100_000);
  await during(t, async () => {
    const c = await ehlo();
    try {
      assert.equal(await c.say('MAIL FROM:<long@sender.test>'), '250 2.1.0 Ok');
      assert.equal(await c.say('RCPT TO:<alice@primary.test>'), '250 2.1.5 Ok');
      assert.equal(await c.say('DATA'), '354 End data with <CR><LF>.<CR><LF>');
      assert.match(await c.say(`Subject: long\r\n\r\n${long1}\r\n${long2}\r\nend\r\n.`), /^250 2\.0\.0 Ok: queued as /);
      assert.equal(await c.say('NOOP'), '250 2.0.0 Ok');
    } finally {
      c.close();
    }
  });
  const [m] = await waitSink((m) => m.from === 'long@sender.test');
  // Postfix folds lines longer than smtp_line_length_limit with <CR><LF><SPACE>; unfolded, the
  // content must be exactly what was sent.
  const body = m.raw.toString('latin1').replace(/\r\n /g, '');
  assert.ok(body.endsWith(`\r\n\r\n${long1}\r\n${long2}\r\nend\r\n`), 'long lines changed on the way');
});

test('NUL and 8-bit bytes in commands: cut at the NUL / 500 5.5.2, no crash, the session continues', async (t) => {
  await during(t, async () => {
    const c = await ehlo();
    try {
      // As in Postfix (C strings), a command ends at its NUL.
      assert.equal(await c.say('NOOP\x00'), '250 2.0.0 Ok');
      assert.equal(await c.say('MAIL FROM:<a\x00b@sender.test>'), '501 5.1.7 Bad sender address syntax');
      // Not UTF-8 (smtputf8_enable = yes, the default): Postfix's "bad UTF-8 syntax".
      assert.equal(await c.say(Buffer.from('MAIL FROM:<\xff\xfe@sender.test>', 'latin1')), '500 5.5.2 Error: bad UTF-8 syntax');
      assert.equal(await c.say(Buffer.from([0x80, 0xc0, 0xaf, 0x4e, 0x4f, 0x4f, 0x50])), '500 5.5.2 Error: bad UTF-8 syntax');
      assert.equal(await c.say('NOOP'), '250 2.0.0 Ok');
      assert.match(await c.say('QUIT'), /^221 2\.0\.0 /);
    } finally {
      c.close();
    }
  });
  // Valid UTF-8 in an address without SMTPUTF8 on MAIL: accepted, as Postfix 3.7 does with
  // strict_smtputf8 = no, its default (test/fidelity compares it); with SMTPUTF8 too.
  const u = await ehlo();
  try {
    assert.equal(await u.say(Buffer.from('MAIL FROM:<j\u00f6e@sender.test>', 'utf8')), '250 2.1.0 Ok');
    assert.equal(await u.say(Buffer.from('RCPT TO:<j\u00f6rg@primary.test>', 'utf8')), '250 2.1.5 Ok');
    assert.equal(await u.say('RSET'), '250 2.0.0 Ok');
    assert.equal(await u.say(Buffer.from('MAIL FROM:<j\u00f6e@sender.test> SMTPUTF8', 'utf8')), '250 2.1.0 Ok');
    assert.equal(await u.say(Buffer.from('RCPT TO:<j\u00f6rg@primary.test>', 'utf8')), '250 2.1.5 Ok');
  } finally {
    u.close();
  }
  assert.doesNotMatch(server.log(), /from=<a|from=<\ufffd|internal error/);
});

test('talk before the greeting: 220, then 554 5.5.0 protocol synchronization, disconnect', async (t) => {
  await during(t, async () => {
    const c = await connectFrom(PREGREET_IP);
    try {
      c.write('EHLO early.test\r\nMAIL FROM:<early@sender.test>\r\n');
      assert.match(await c.readText(5000), /^220 mx2\.backup\.test ESMTP/);
      assert.equal(await c.readText(), '554 5.5.0 Error: SMTP protocol synchronization');
      await c.waitClosed();
      assert.equal(c.pending(), '');
    } finally {
      c.close();
    }
  });
  await server.waitForLog(/improper command pipelining after CONNECT from unknown\[127\.0\.0\.8\]/, 5000);
  assert.doesNotMatch(server.log(), /from=<early@sender\.test>/);
});

test('STARTTLS command injection: commands in the same packet are discarded at the handshake', async (t) => {
  await during(t, async () => {
    const c = await connectFrom();
    try {
      assert.match(await c.readText(), /^220 /);
      assert.match(await c.say('EHLO abuser.test'), /\n250-STARTTLS\n/);
      // Postfix lets STARTTLS be pipelined and throws away the plaintext after it (CVE-2011-0411).
      c.write('STARTTLS\r\nMAIL FROM:<evil@sender.test>\r\nRCPT TO:<alice@primary.test>\r\n');
      assert.equal(await c.readText(), '220 2.0.0 Ready to start TLS');
      await c.startTls(cert.cert);
      // Had the injected MAIL survived, its reply (503: EHLO again after STARTTLS) would come first.
      assert.equal(await c.say('NOOP'), '250 2.0.0 Ok');
      assert.match(await c.say('QUIT'), /^221 /);
    } finally {
      c.close();
    }
  });
  assert.doesNotMatch(server.log(), /from=<evil@sender\.test>/);
});

test('too many recipients: 452 4.5.3 past smtpd_recipient_limit, the first 5 still delivered', async (t) => {
  await during(t, async () => {
    const c = await ehlo();
    try {
      assert.equal(await c.say('MAIL FROM:<many@sender.test>'), '250 2.1.0 Ok');
      for (let i = 1; i <= 5; i++) assert.equal(await c.say(`RCPT TO:<r${i}@primary.test>`), '250 2.1.5 Ok');
      assert.equal(await c.say('RCPT TO:<r6@primary.test>'), '452 4.5.3 Error: too many recipients');
      assert.equal(await c.say('RCPT TO:<r7@primary.test>'), '452 4.5.3 Error: too many recipients');
      assert.equal(await c.say('DATA'), '354 End data with <CR><LF>.<CR><LF>');
      assert.match(await c.say('Subject: many\r\n\r\nmany\r\n.'), /^250 2\.0\.0 Ok: queued as /);
      assert.match(await c.say('QUIT'), /^221 /);
    } finally {
      c.close();
    }
  });
  const msgs = await waitSink((m) => m.from === 'many@sender.test');
  assert.deepEqual(msgs.flatMap((m) => m.to).sort(), ['r1@primary.test', 'r2@primary.test', 'r3@primary.test', 'r4@primary.test', 'r5@primary.test']);
});

test('too many errors: 421 4.7.0 after smtpd_hard_error_limit, disconnect', async (t) => {
  await during(t, async () => {
    const c = await ehlo();
    try {
      for (let i = 0; i < 5; i++) assert.equal(await c.say(`BOGUS${i}`), '500 5.5.2 Error: command not recognized');
      // Postfix checks the limit before reading the next command: 421 comes at once.
      assert.equal(await c.readText(), `421 4.7.0 ${HOST} Error: too many errors`);
      await c.waitClosed();
    } finally {
      c.close();
    }
  });
  await server.waitForLog(/too many errors after UNKNOWN from \S+\[127\.0\.0\.1\]/, 5000);
});

test('too many connections from one address: 421 4.7.0, others unaffected, slot freed on close', async (t) => {
  const held: RawClient[] = [];
  try {
    await during(t, async () => {
      for (let i = 0; i < 5; i++) {
        const c = await connectFrom(FLOOD_IP);
        held.push(c);
        assert.match(await c.readText(), /^220 /);
      }
      const sixth = await connectFrom(FLOOD_IP);
      held.push(sixth);
      assert.equal(await sixth.readText(), `421 4.7.0 ${HOST} Error: too many connections from ${FLOOD_IP}`);
      await sixth.waitClosed();
    }, 0);
    await server.waitForLog(new RegExp(`Connection concurrency limit exceeded: 6 from \\S+\\[${FLOOD_IP.replace(/\./g, '\\.')}\\] for service`), 5000);
    held[0].close();
    // Once one of the five has gone, the address may connect again (bounded retry: the close
    // reaches the server asynchronously).
    let greeting = '';
    for (let i = 0; i < 20 && !greeting.startsWith('220 '); i++) {
      await sleep(100);
      const c = await connectFrom(FLOOD_IP);
      held.push(c);
      greeting = await c.readText();
    }
    assert.match(greeting, /^220 /);
  } finally {
    for (const c of held) c.close();
  }
});

test('slowloris (a byte a second): 421 4.4.2 timeout after smtpd_timeout', { timeout: 20_000 }, async (t) => {
  let elapsed = 0;
  await during(t, async () => {
    const c = await ehlo();
    try {
      const t0 = Date.now();
      const bytes = 'MAIL FROM:<slow@sender.test>\r\n';
      let i = 0;
      const drip = setInterval(() => {
        if (c.closed || i >= bytes.length) return clearInterval(drip);
        c.write(bytes[i++]);
      }, 1000);
      try {
        assert.equal(await c.readText(8000), `421 4.4.2 ${HOST} Error: timeout exceeded`);
        await c.waitClosed();
      } finally {
        clearInterval(drip);
      }
      elapsed = Date.now() - t0;
      assert.ok(i < bytes.length, 'the command was never completed');
    } finally {
      c.close();
    }
  }, 1000);
  t.diagnostic(`slowloris cut off after ${elapsed} ms`);
  // smtpd_timeout = 3s per record, counted from the EHLO line.
  assert.ok(elapsed >= 2500 && elapsed <= 4500, `cut off after ${elapsed} ms`);
  await server.waitForLog(/timeout after EHLO from \S+\[127\.0\.0\.1\]/, 5000);
  assert.doesNotMatch(server.log(), /from=<slow@sender\.test>/);
});

test('the server survived every case', async () => {
  assert.equal(server.child.exitCode, null);
  assert.equal(server.child.signalCode, null);
  const g = await goodSession();
  assert.match(g.reply, /^250 2\.0\.0 Ok: queued as /);
  assert.doesNotMatch(server.log(), /internal error|TypeError|RangeError|fatal/);
});

async function waitSink(pred: (m: Sink['messages'][number]) => boolean, ms = 15_000): Promise<Sink['messages']> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = sink.messages.filter(pred);
    if (found.length) return found;
    if (Date.now() > deadline) throw new Error('no such message at the primary');
    await sleep(100);
  }
}
