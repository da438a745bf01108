// Interop: the original client for a real Postfix 3.7 primary. Postfix authorizes the backup
// (smtpd_authorized_xforward_hosts, smtpd_authorized_xclient_hosts = 127.0.0.1); a client on
// 127.0.0.9 gives its mail to Backstop, which forwards it with XFORWARD (one node) or XCLIENT
// (another). Postfix's own log and Received: header must then name 127.0.0.9 and its HELO, not
// the backup; with XCLIENT the primary's own client restrictions apply to the original client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsSandbox } from '../../bench/harness/sandbox.js';
import { startPostfix, primaryMx, type PostfixInstance } from '../../bench/harness/postfix.js';
import { RawClient } from '../helpers/smtp-client.js';
import { freePort, waitFor } from '../helpers/net.js';
import { requireProgram, startBackstopNode, type BackstopNode } from './helpers/peers.js';

const ZONE = {
  'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] as Array<[number, string]> },
  'mx1.primary.test': { A: ['127.0.0.2'] },
  'mx2.backup.test': { A: ['127.0.0.1'] },
  'sender.test': { MX: [[10, 'mx.sender.test']] as Array<[number, string]> },
  'mx.sender.test': { A: ['127.0.0.6'] },
};

/** One message from `from` (a loopback source address) with HELO `helo`; returns the queue id. */
async function send(port: number, from: string, helo: string, rcpt: string, subject: string): Promise<string> {
  const { c: s } = await RawClient.open(port, '127.0.0.1', { timeoutMs: 15_000, localAddress: from });
  try {
    assert.match(await s.say(`EHLO ${helo}`), /^250/);
    assert.match(await s.say('MAIL FROM:<someone@sender.test>'), /^250/);
    assert.match(await s.say(`RCPT TO:<${rcpt}>`), /^250 /);
    assert.match(await s.say('DATA'), /^354/);
    s.write(`Subject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@sender.test>\r\n\r\nhello\r\n.\r\n`);
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(await s.readText());
    assert.ok(m);
    await s.say('QUIT');
    return m[1];
  } finally {
    s.close();
  }
}

test('Postfix as the primary sees the original client through XFORWARD and XCLIENT', { timeout: 150_000 }, async () => {
  requireProgram('postfix');
  requireProgram('dnsmasq');
  const primaryPort = await freePort('127.0.0.2');
  const portXf = await freePort();
  const portXc = await freePort();
  const dns = await startDnsSandbox({ zone: ZONE, address: '127.0.53.43' });
  let pf: PostfixInstance | undefined;
  const nodes: BackstopNode[] = [];
  try {
    const setup = primaryMx({ hostname: 'mx1.primary.test', domain: 'primary.test', users: ['alice', 'bob'] });
    pf = await startPostfix({
      name: 'xfwd', sandbox: dns,
      ...setup,
      main: {
        ...setup.main,
        smtpd_authorized_xforward_hosts: '127.0.0.1',
        smtpd_authorized_xclient_hosts: '127.0.0.1',
        // The primary's own policy about clients: 127.0.0.10 is not welcome.
        smtpd_client_restrictions: 'check_client_access inline:{ { 127.0.0.10 = REJECT not welcome at the primary } }',
      },
      services: [`127.0.0.2:${primaryPort} inet n - n - - smtpd`],
    });
    const primary = pf;
    const xf = await startBackstopNode({ name: 'mx2', port: portXf, dns: dns.servers, primaryPort, main: { smtp_send_xforward_command: 'yes' } });
    nodes.push(xf);
    const xc = await startBackstopNode({ name: 'mx3', port: portXc, dns: dns.servers, primaryPort, main: { backstop_smtp_send_xclient: 'yes' } });
    nodes.push(xc);

    // XFORWARD: the backup stays the SMTP client, the message carries the original one.
    const id1 = await send(portXf, '127.0.0.9', 'client-one.example', 'alice@primary.test', 'via xforward');
    await xf.waitForLog(new RegExp(`${id1}: removed`), 30_000);
    await waitFor(() => primary.mailbox('alice@primary.test').some((m) => m.includes('via xforward')), 20_000, 'Postfix delivering');
    const m1 = primary.mailbox('alice@primary.test').find((m) => m.includes('via xforward'))!;
    assert.match(m1, /^Received: from client-one\.example \(\S+ \[127\.0\.0\.9\]\)/m, m1);
    assert.match(primary.log(), /: client=\S+\[127\.0\.0\.1\], orig_client=\S+\[127\.0\.0\.9\]/);

    // XCLIENT: the primary's session becomes the original client's.
    const id2 = await send(portXc, '127.0.0.9', 'client-two.example', 'bob@primary.test', 'via xclient');
    await xc.waitForLog(new RegExp(`${id2}: removed`), 30_000);
    await waitFor(() => primary.mailbox('bob@primary.test').some((m) => m.includes('via xclient')), 20_000, 'Postfix delivering');
    const m2 = primary.mailbox('bob@primary.test').find((m) => m.includes('via xclient'))!;
    assert.match(m2, /^Received: from client-two\.example \(\S+ \[127\.0\.0\.9\]\)/m, m2);
    assert.match(primary.log(), /: client=\S+\[127\.0\.0\.9\]$/m);

    // The primary's own restriction applies to the original client, not to the backup.
    const id3 = await send(portXc, '127.0.0.10', 'client-three.example', 'alice@primary.test', 'unwelcome');
    await xc.waitForLog(new RegExp(`${id3}: to=<alice@primary\\.test>.*status=bounced`), 30_000);
    assert.match(xc.log(), new RegExp(`${id3}: to=<alice@primary\\.test>, .*dsn=5\\.7\\.1, status=bounced \\(host mx1\\.primary\\.test\\[127\\.0\\.0\\.2\\] said: 554 5\\.7\\.1 <\\S+\\[127\\.0\\.0\\.10\\]>: Client host rejected: not welcome at the primary`));
    // Postfix's own log names the original client and its HELO, not the backup.
    assert.match(primary.log(), /NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.10\]: 554 5\.7\.1 .* helo=<client-three\.example>/);
  } catch (err) {
    for (const n of nodes) console.error(`--- backstop log ---\n${n.log().slice(-5000)}`);
    console.error(`--- postfix log ---\n${pf?.log().slice(-6000)}`);
    throw err;
  } finally {
    for (const n of nodes) {
      await n.stop();
      n.cleanup();
    }
    await pf?.stop();
    pf?.cleanup();
    await dns.stop();
  }
});
