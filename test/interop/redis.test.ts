// Interop: redis-server as the verify cache shared by two Backstop nodes
// (address_verify_map = redis:CONFIG_FILE on both, the same server and prefix). Node A probes the
// primary (a scripted SMTP server on 127.0.0.2) while it is up; with the primary down, node B —
// which never probed anything — answers from what A learned: the verified address accepted and
// its mail queued, the undeliverable one refused with the primary's text, an address nobody
// verified deferred with 450.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsServer, type TestDnsServer } from '../helpers/dnsserver.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { talk } from '../helpers/smtp-client.js';
import { requireProgram, startBackstopNode, startRedis, tempDir, type BackstopNode, type Peer } from './helpers/peers.js';
import { freePort } from '../helpers/net.js';

test('redis-server: a verify cache shared by two Backstop nodes', { timeout: 90_000 }, async (t) => {
  requireProgram('redis-server');
  const cfgDir = tempDir('redis-cf');
  let dns: TestDnsServer | undefined;
  let sink: Sink | undefined;
  let redis: Peer | undefined;
  const nodes: BackstopNode[] = [];
  try {
    redis = await startRedis({ port: await freePort() });
    const redisCf = join(cfgDir, 'verify-redis.cf');
    writeFileSync(redisCf, `# shared verify cache\nhosts = 127.0.0.1:${redis.port}\nprefix = backstop:verify:\ntimeout = 2s\n`);
    dns = await startDnsServer({
      'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test'], [30, 'mx3.backup.test']] },
      'mx1.primary.test': { A: ['127.0.0.2'] },
      'mx2.backup.test': { A: ['127.0.0.1'] },
      'mx3.backup.test': { A: ['127.0.0.1'] },
    });
    const primaryPort = await freePort('127.0.0.2');
    sink = await startSink({ host: '127.0.0.2', port: primaryPort, users: ['alice@primary.test'] });
    const main = { address_verify_map: `redis:${redisCf}` };
    const a = await startBackstopNode({ name: 'mx2', port: await freePort(), dns: dns.servers, primaryPort, main });
    nodes.push(a);
    const b = await startBackstopNode({ name: 'mx3', port: await freePort(), dns: dns.servers, primaryPort, main });
    nodes.push(b);

    await t.test('node A verifies through the primary', async () => {
      const s = await talk(a.port);
      try {
        await s.cmd('EHLO client.test');
        await s.cmd('MAIL FROM:<someone@sender.test>');
        assert.equal(await s.cmd('RCPT TO:<alice@primary.test>'), '250 2.1.5 Ok');
        assert.match(await s.cmd('RCPT TO:<nobody@primary.test>'), /^550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: undeliverable address: host mx1\.primary\.test\[127\.0\.0\.2\] said: 550 5\.1\.1 /);
      } finally {
        s.close();
      }
      assert.equal(sink!.rcptCommands, 2, 'A probed both addresses');
    });

    await t.test('primary down: node B answers from the shared cache without probing', async () => {
      await sink!.close();
      sink = undefined;
      const s = await talk(b.port);
      try {
        await s.cmd('EHLO client.test');
        await s.cmd('MAIL FROM:<someone@sender.test>');
        assert.equal(await s.cmd('RCPT TO:<alice@primary.test>'), '250 2.1.5 Ok');
        assert.match(await s.cmd('RCPT TO:<nobody@primary.test>'), /^550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: undeliverable address: host mx1\.primary\.test\[127\.0\.0\.2\] said: 550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: User unknown \(in reply to RCPT TO command\)$/);
        assert.match(await s.cmd('RCPT TO:<carol@primary.test>'), /^450 4\.1\.1 <carol@primary\.test>: Recipient address rejected: unverified address: connect to mx1\.primary\.test\[127\.0\.0\.2\]:\d+: Connection refused$/);
        assert.match(await s.cmd('DATA'), /^354 /);
        const r = await s.data('Subject: via node B\r\n\r\nqueued on B\r\n');
        const id = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(r)?.[1];
        assert.ok(id, r);
        await b.waitForLog(new RegExp(`${id}: to=<alice@primary\\.test>.*status=deferred`), 20_000);
      } finally {
        s.close();
      }
    });
  } catch (err) {
    console.error(nodes.map((n, i) => `--- node ${i} ---\n${n.log().slice(-3000)}`).join('\n') + `\n--- redis ---\n${redis?.output().slice(-2000)}`);
    throw err;
  } finally {
    for (const n of nodes) { await n.stop(); n.cleanup(); }
    await sink?.close();
    await redis?.stop();
    await dns?.close();
    rmSync(cfgDir, { recursive: true, force: true });
  }
});
