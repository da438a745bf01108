// Interop: postgrey as `check_policy_service inet:127.0.0.1:PORT`. postgrey (own database folder,
// --delay=2, empty whitelists) answers Backstop's policy requests over TCP on loopback; the first
// attempt of a triplet is deferred with postgrey's text, a retry after the delay is accepted.
// The same postgrey also serves an isolated Postfix 3.7 with the same restriction, and the
// deferral Backstop gives must be the exact reply Postfix gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type TestDnsServer } from '../helpers/dnsserver.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { talk } from '../helpers/smtp-client.js';
import { startPostfix, type PostfixInstance } from '../../bench/harness/postfix.js';
import { requireProgram, startBackstopNode, startPostgrey, type BackstopNode, type Peer } from './helpers/peers.js';
import { freePort, sleep } from '../helpers/net.js';

/** One RCPT in a fresh session; returns the RCPT reply. */
async function rcpt(port: number, from: string, to: string): Promise<string> {
  const s = await talk(port);
  try {
    assert.match(await s.cmd('EHLO client.test'), /^250/);
    assert.match(await s.cmd(`MAIL FROM:<${from}>`), /^250/);
    return await s.cmd(`RCPT TO:<${to}>`);
  } finally {
    s.close();
  }
}

test('postgrey as check_policy_service: deferred first, accepted after the delay, as Postfix', { timeout: 120_000 }, async (t) => {
  requireProgram('postgrey');
  requireProgram('postfix');
  let dns: TestDnsServer | undefined;
  let sink: Sink | undefined;
  let pg: Peer | undefined;
  let bs: BackstopNode | undefined;
  let pf: PostfixInstance | undefined;
  try {
    pg = await startPostgrey({ port: await freePort(), delaySec: 2 });
    const policy = `check_policy_service inet:127.0.0.1:${pg.port}`;
    dns = await startDnsServer({
      'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
      'mx1.primary.test': { A: ['127.0.0.2'] },
      'mx2.backup.test': { A: ['127.0.0.1'] },
    });
    const primaryPort = await freePort('127.0.0.2');
    sink = await startSink({ host: '127.0.0.2', port: primaryPort, users: ['alice@primary.test'] });
    const port = await freePort();
    bs = await startBackstopNode({
      name: 'mx2', port, dns: dns.servers, primaryPort,
      main: { smtpd_recipient_restrictions: `permit_mynetworks, reject_unverified_recipient, ${policy}, permit_mx_backup, reject_unauth_destination` },
    });
    // Postfix with the same policy step (no DNS needed: a relay domain, no verification).
    const pfPort = await freePort();
    pf = await startPostfix({
      name: 'greylisted',
      main: {
        myhostname: 'mx3.backup.test', mydestination: '', inet_interfaces: '127.0.0.1', inet_protocols: 'ipv4',
        mynetworks: '127.0.0.254/32', relay_domains: 'primary.test', smtpd_error_sleep_time: '0s',
        smtpd_relay_restrictions: 'permit_mynetworks, reject_unauth_destination',
        smtpd_recipient_restrictions: `${policy}, permit`,
        transport_maps: 'inline:{ primary.test=discard: }',
      },
      services: [`127.0.0.1:${pfPort} inet n - n - - smtpd`],
    });
    const backup = bs;
    const postfix = pf;

    await t.test('first attempt deferred with postgrey\'s text, identical to Postfix\'s reply', async () => {
      const first = await rcpt(port, 'first@sender.test', 'alice@primary.test');
      assert.equal(first, '450 4.2.0 <alice@primary.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/primary.test.html');
      await backup.waitForLog(/NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 450 4\.2\.0 <alice@primary\.test>: Recipient address rejected: Greylisted, see http:\/\/postgrey\.schweikert\.ch\/help\/primary\.test\.html; from=<first@sender\.test> to=<alice@primary\.test> proto=ESMTP helo=<client\.test>/);
      const viaPostfix = await rcpt(pfPort, 'other@sender.test', 'alice@primary.test');
      assert.equal(viaPostfix, first, 'Backstop and Postfix give the same deferral');
    });

    await t.test('an immediate retry is still deferred; after the delay it is accepted', async () => {
      assert.match(await rcpt(port, 'first@sender.test', 'alice@primary.test'), /^450 4\.2\.0 .*Greylisted/);
      await sleep(3000);
      assert.equal(await rcpt(port, 'first@sender.test', 'alice@primary.test'), '250 2.1.5 Ok');
      assert.equal(await rcpt(pfPort, 'other@sender.test', 'alice@primary.test'), '250 2.1.5 Ok');
      // postgrey logged the pass.
      await waitOutput(pg!, /action=pass, reason=triplet found, .*sender=first@sender\.test, recipient=alice@primary\.test/);
      void postfix;
    });
  } catch (err) {
    console.error(`--- backstop log ---\n${bs?.log().slice(-4000)}\n--- postgrey ---\n${pg?.output().slice(-3000)}\n--- postfix ---\n${pf?.log().slice(-3000)}`);
    throw err;
  } finally {
    await bs?.stop();
    bs?.cleanup();
    await pf?.stop();
    pf?.cleanup();
    await pg?.stop();
    await sink?.close();
    await dns?.close();
  }
});

async function waitOutput(p: Peer, re: RegExp, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(p.output())) {
    if (Date.now() > end) throw new Error(`postgrey did not log ${re}:\n${p.output()}`);
    await sleep(50);
  }
}
