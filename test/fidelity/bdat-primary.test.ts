// BDAT end to end: a message sent to Backstop in BDAT chunks (pipelined, with a chunk that looks
// like commands and a dot line, a bare LF and a last line without its line end) reaches a real
// Postfix 3.7 primary's mailbox as exactly one message, with CRLF line ends and the chunk's
// bytes as content. Backstop delivers with DATA (src/smtp), whatever the primary offers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsSandbox } from '../../bench/harness/sandbox.js';
import { startPostfix, primaryMx, type PostfixInstance } from '../../bench/harness/postfix.js';
import { RawClient } from '../helpers/smtp-client.js';
import { freePort, waitFor } from '../helpers/net.js';
import { requireProgram, startBackstopNode, type BackstopNode } from '../interop/helpers/peers.js';

const ZONE = {
  'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] as Array<[number, string]> },
  'mx1.primary.test': { A: ['127.0.0.2'] },
  'mx2.backup.test': { A: ['127.0.0.1'] },
};

test('BDAT into Backstop, delivered to a real Postfix primary', { timeout: 120_000 }, async () => {
  requireProgram('postfix');
  requireProgram('dnsmasq');
  const primaryPort = await freePort('127.0.0.2');
  const port = await freePort();
  // A fixed address of its own: two suites picking the first free one at once could collide.
  const dns = await startDnsSandbox({ zone: ZONE, address: '127.0.53.47' });
  let pf: PostfixInstance | undefined;
  let bs: BackstopNode | undefined;
  try {
    pf = await startPostfix({
      name: 'bdatprimary', sandbox: dns,
      ...primaryMx({ hostname: 'mx1.primary.test', domain: 'primary.test', users: ['alice'] }),
      services: [`127.0.0.2:${primaryPort} inet n - n - - smtpd`],
    });
    bs = await startBackstopNode({ name: 'mx2', port, dns: dns.servers, primaryPort });
    const { c } = await RawClient.open(port, '127.0.0.1', { timeoutMs: 15_000 });
    const chunk1 = 'From: s@sender.test\r\nSubject: chunked\r\n\r\nline one\r\n';
    const chunk2 = 'RSET\r\nMAIL FROM:<evil@x.test>\r\n.\r\nbare lf\nlast';
    try {
      assert.match(await c.say('EHLO client.test'), /250[ -]CHUNKING/);
      c.write(`MAIL FROM:<s@sender.test>\r\nRCPT TO:<alice@primary.test>\r\nBDAT ${chunk1.length}\r\n${chunk1}BDAT ${chunk2.length} LAST\r\n${chunk2}`);
      const replies = [await c.readText(), await c.readText(), await c.readText(), await c.readText()];
      assert.deepEqual(replies.slice(0, 3), ['250 2.1.0 Ok', '250 2.1.5 Ok', `250 2.0.0 Ok: ${chunk1.length} bytes`]);
      assert.match(replies[3], /^250 2\.0\.0 Ok: \d+ bytes queued as [0-9A-F]+$/);
      assert.match(await c.say('QUIT'), /^221 /);
    } finally {
      c.close();
    }
    const primary = pf;
    const mails = await waitFor(() => (primary.mailbox('alice@primary.test').length ? primary.mailbox('alice@primary.test') : undefined), 60_000, 'the message in alice\'s mailbox');
    assert.equal(mails.length, 1);
    const body = mails[0].split(/\r?\n\r?\n/).slice(1).join('\n\n');
    // Maildir stores LF line ends; every line the client sent is there, as content.
    assert.equal(body, 'line one\nRSET\nMAIL FROM:<evil@x.test>\n.\nbare lf\nlast\n');
    assert.match(mails[0], /^Subject: chunked$/m);
  } finally {
    if (bs) { await bs.stop(); bs.cleanup(); }
    if (pf) { await pf.stop(); pf.cleanup(); }
    await dns.stop();
  }
});
