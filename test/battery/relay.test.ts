// Security: the open-relay battery (relay-cases.ts; sources in docs/battery.md) against the real
// server backing up exactly one domain, in two set-ups: permit_mx_backup restricted by
// permit_mx_backup_networks, and relay_domains. Each case runs in its own session; a RCPT that
// is accepted goes on through DATA, so that anything a trick gets past smtpd is really queued
// and delivered. Then: no case got 2xx for its RCPT, the foreign destination's MX (a sink on
// 127.0.0.55:25) received nothing, the primary received only the controls, the queue is empty.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startDnsServer } from '../helpers/dnsserver.js';
import { startSink } from '../helpers/sink.js';
import { freePort, sleep } from '../helpers/net.js';
import { runCli } from '../helpers/cli.js';
import { RawClient } from '../helpers/smtp-client.js';
import { FOREIGN_IP, mainCf, makeConfigDir, startBackstop, worldZone } from './harness.js';
import { CONTROL_RCPTS, RELAY_CASES, type RelayCase } from './relay-cases.js';

/**
 * Cases Postfix itself accepts in a set-up, because the address really is ours; they must still
 * never reach the foreign MX (checked below). Documented in docs/battery.md.
 */
const OURS: Record<string, string> = {
  // resolve_local(): a literal of one of our own interface addresses is a local domain.
  'ip-literal-ours': 'our own address literal is a local destination (Postfix resolve_local)',
  // parent_domain_matches_subdomains includes relay_domains: sub.primary.test is a relay domain.
  'prefix-trick': 'relay_domains matches subdomains (parent_domain_matches_subdomains)',
};

async function attempt(port: number, c: RelayCase | { id: string; rcpt: string; from?: string; helo?: string }): Promise<{ rcpt: string; data?: string }> {
  const cl = await RawClient.connect(port);
  try {
    await cl.read(5000);
    await cl.cmd(`EHLO ${c.helo ?? 'client.test'}`);
    const mail = await cl.cmd(`MAIL FROM:${c.from ?? '<someone@sender.test>'}`, 10_000);
    if (mail.code !== 250) return { rcpt: `(MAIL) ${mail.text}` };
    cl.write(Buffer.from(`RCPT TO:${c.rcpt}\r\n`, 'utf8'));
    const r = await cl.read(15_000);
    if (r.code !== 250) return { rcpt: r.text };
    const d = await cl.cmd('DATA');
    if (d.code !== 354) return { rcpt: r.text, data: d.text };
    cl.write(`Subject: relay test ${c.id}\r\nX-Case: ${c.id}\r\n\r\nrelay test\r\n.\r\n`);
    return { rcpt: r.text, data: (await cl.read(10_000)).text };
  } finally {
    cl.close();
  }
}

for (const variant of ['permit_mx_backup', 'relay_domains'] as const) {
  test(`open-relay battery (${variant}): ${RELAY_CASES.length} tricks, none relayed`, { timeout: 120_000 }, async (t) => {
    const dns = await startDnsServer(worldZone());
    const foreign = await startSink({ host: FOREIGN_IP, port: 25 });
    const primaryPort = await freePort('127.0.0.2');
    const primary = await startSink({ host: '127.0.0.2', port: primaryPort });
    const port = await freePort();
    const extra = variant === 'relay_domains'
      ? ['relay_domains = primary.test', 'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination']
      : [];
    const dir = makeConfigDir({
      'main.cf': mainCf(dns.servers, primaryPort, extra),
      'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
    });
    const server = await startBackstop(dir, port);
    try {
      const rows: string[] = [];
      const relayed: string[] = [];
      for (const c of RELAY_CASES) {
        const r = await attempt(port, c);
        rows.push(`${c.id}: RCPT TO:${JSON.stringify(c.rcpt)} → ${r.rcpt}${r.data ? ` / DATA → ${r.data}` : ''}`);
        const ours = OURS[c.id] && (c.id !== 'prefix-trick' || variant === 'relay_domains');
        if (/^2/.test(r.rcpt) && !ours) relayed.push(`${c.id} (${r.rcpt}${r.data ? `; ${r.data}` : ''})`);
        // A refusal, never a crash or silence: 4xx or 5xx with a proper code.
        assert.match(r.rcpt, /^(\(MAIL\) )?[245]\d\d[ -]/, c.id);
      }
      t.diagnostic(rows.join('\n'));
      for (const rcpt of CONTROL_RCPTS) {
        const r = await attempt(port, { id: `control ${rcpt}`, rcpt });
        assert.match(r.rcpt, /^250 2\.1\.5 /, `control ${rcpt}`);
        assert.match(r.data ?? '', /^250 2\.0\.0 Ok: queued as /, `control ${rcpt}`);
      }
      await primary.waitFor(CONTROL_RCPTS.length, 30_000).catch((err: Error) => { throw new Error(`${err.message}\n${server.log().split("\n").filter((l) => !/smtpd\[/.test(l)).join("\n")}`); });
      await sleep(1500);
      const q = await runCli(['postqueue', '-c', dir, '-p']);
      const line = `cases=${RELAY_CASES.length} rcpt-accepted=${relayed.length} foreign-mx-received=${foreign.messages.length} (connections ${foreign.connections}) primary-received=${primary.messages.length}`;
      t.diagnostic(line);
      console.log(`battery relay (${variant}): ${line}`);
      assert.deepEqual(relayed, [], 'tricks that got past RCPT');
      assert.equal(foreign.connections, 0, 'something connected to the foreign MX');
      assert.equal(primary.messages.length, CONTROL_RCPTS.length);
      assert.deepEqual(primary.messages.map((m) => m.to[0]).sort(), ['alice@primary.test', 'bob@PRIMARY.TEST', 'carol@primary.test'].sort());
      // Accepted "ours" cases end as bounces to someone@sender.test (its MX is down: deferred);
      // nothing else may be left in the queue.
      assert.doesNotMatch(q.stdout, /x@other\.test|other\.test!|%other/, q.stdout);
    } finally {
      await server.stop();
      await primary.close();
      await foreign.close();
      await dns.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
