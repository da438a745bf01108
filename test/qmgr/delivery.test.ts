// Integration tests of the queue manager with real sockets: SMTP sinks on 127.0.0.2 (primary)
// and 127.0.0.3 (the sender's domain), the loopback DNS server, a real queue on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHarness, until } from './harness.js';
import { controlHandlers } from '../../src/qmgr/index.js';
import { sleep } from '../helpers/net.js';

const FAST = { minimal_backoff_time: 1, maximal_backoff_time: 2, queue_run_delay: 1, backstop_destination_probe_interval: 0.2 };

test('delivers new mail at once when the primary is up, and removes the file', async () => {
  const h = await startHarness(FAST);
  try {
    const ids = [await h.submit('s@sender.test', ['a@example.test']), await h.submit('s@sender.test', ['b@example.test', 'c@example.test'])];
    const msgs = await h.primary!.waitFor(2, 5000);
    assert.deepEqual(msgs.map((m) => m.to.sort()).sort(), [['a@example.test'], ['b@example.test', 'c@example.test']]);
    for (const id of ids) await h.waitLine(new RegExp(`^${id}: removed$`));
    assert.equal(h.queue.size, 0);
    assert.ok(h.lines.some((l) => new RegExp(`^${ids[0]}: to=<a@example.test>, relay=mx1.example.test\\[127.0.0.2\\]:${h.port}, .*status=sent`).test(l)));
  } finally {
    await h.close();
  }
});

test('queues while the primary is down (Postfix reason), then the watch delivers within seconds of its return', async () => {
  const h = await startHarness({ ...FAST, minimal_backoff_time: 300, maximal_backoff_time: 4000, queue_run_delay: 300 }, { primary: false });
  try {
    const ups: Array<[string, string]> = [];
    h.qmgr.on('destinationUp', (d, n) => ups.push([d, n]));
    const id = await h.submit('s@sender.test', ['a@example.test']);
    await until(() => h.queue.get(id)?.queue === 'deferred', 5000, 'deferral');
    const e = h.queue.get(id)!;
    assert.equal(e.retry.lastReason, `connect to mx1.example.test[127.0.0.2]:${h.port}: Connection refused`);
    assert.ok(e.retry.nextAttempt - Date.now() > 290_000, 'next attempt after minimal_backoff_time');
    assert.ok(h.lines.some((l) => l.startsWith(`${id}: to=<a@example.test>, relay=none,`) && l.endsWith(`dsn=4.4.1, status=deferred (connect to mx1.example.test[127.0.0.2]:${h.port}: Connection refused)`)));
    await sleep(500);
    const back = Date.now();
    await h.startPrimary();
    await h.primary!.waitFor(1, 3000);
    const took = Date.now() - back;
    assert.ok(took < 3000, `delivered ${took} ms after the primary returned`);
    await h.waitLine(/^destination example.test is reachable again: flushing 1 message$/);
    assert.deepEqual(ups, [['example.test', `mx1.example.test[127.0.0.2]:${h.port}`]]);
    await h.waitLine(new RegExp(`^${id}: removed$`));
  } finally {
    await h.close();
  }
});

test('a dead destination: further mail is deferred without a connection ("delivery temporarily suspended")', async () => {
  const h = await startHarness({ ...FAST, initial_destination_concurrency: 2, minimal_backoff_time: 300, backstop_destination_watch: false }, { primary: false });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await h.submit('s@sender.test', [`u${i}@example.test`]));
    await until(() => ids.every((id) => h.queue.get(id)?.queue === 'deferred'), 5000, 'all deferred');
    const suspended = h.lines.filter((l) => /status=deferred \(delivery temporarily suspended: connect to mx1.example.test\[127.0.0.2\]:\d+: Connection refused\)$/.test(l));
    assert.ok(suspended.length >= 1, 'some deferred by the dead list');
    assert.ok(h.qmgr.stats().destinations.find((d) => d.key === 'example.test')!.dead);
  } finally {
    await h.close();
  }
});

test('while the watch sees the destination down, new mail is suspended (no doomed connection), then flushed on its return', async () => {
  // A dead time of 1 s, a probe every 0.2 s: without the watch the destination would be tried again after 1 s.
  const h = await startHarness({ ...FAST, initial_destination_concurrency: 1, minimal_backoff_time: 1, maximal_backoff_time: 60, queue_run_delay: 60 }, { primary: false });
  try {
    const first = await h.submit('s@sender.test', ['a@example.test']);
    await until(() => h.queue.get(first)?.queue === 'deferred', 5000, 'first deferred');
    await new Promise((r) => setTimeout(r, 1800)); // past the dead time; the watch has probed several times
    const refusedBefore = h.lines.filter((l) => /Connection refused\)$/.test(l) && /status=deferred \(connect to/.test(l)).length;
    const second = await h.submit('s@sender.test', ['b@example.test']);
    await h.waitLine(new RegExp(`^${second}: to=<b@example.test>, .*status=deferred \\(delivery temporarily suspended: `));
    const refusedAfter = h.lines.filter((l) => /Connection refused\)$/.test(l) && /status=deferred \(connect to/.test(l)).length;
    assert.equal(refusedAfter, refusedBefore, 'no connection attempt for the new message');
    await h.startPrimary();
    await until(() => h.primary!.messages.length === 2, 5000, 'both delivered after the return');
  } finally {
    await h.close();
  }
});

test('per recipient: 2xx delivered, 4xx deferred, 5xx bounced with a DSN to the sender; no bounce to <>', async () => {
  const h = await startHarness({ ...FAST, backstop_destination_watch: false }, {
    primary: { rcptReply: (a) => (a.startsWith('temp') ? { code: 450, text: '4.2.0 <temp@example.test>: try later' } : a.startsWith('unknown') ? { code: 550, text: '5.1.1 <unknown@example.test>: Recipient address rejected: User unknown' } : undefined) },
  });
  try {
    const id = await h.submit('s@sender.test', ['a@example.test', 'temp@example.test', 'unknown@example.test']);
    const [m] = await h.primary!.waitFor(1);
    assert.deepEqual(m.to, ['a@example.test']);
    const [dsn] = await h.senderSink.waitFor(1);
    assert.equal(dsn.from, '');
    assert.deepEqual(dsn.to, ['s@sender.test']);
    const text = dsn.raw.toString();
    assert.match(text, /Subject: Undelivered Mail Returned to Sender/);
    assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status/);
    assert.match(text, new RegExp(`X-Backstop-Queue-ID: ${id}`));
    assert.match(text, /Final-Recipient: rfc822; unknown@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mx1.example.test\r\nDiagnostic-Code: smtp; 550 5.1.1 <unknown@example.test>: Recipient address rejected: User unknown/);
    assert.doesNotMatch(text, /Final-Recipient: rfc822; (a|temp)@example.test/);
    await h.waitLine(new RegExp(`^${id}: sender non-delivery notification: [0-9A-F]+$`));
    await until(() => h.queue.get(id)?.queue === 'deferred', 5000, 'deferral');
    assert.equal(h.queue.get(id)!.status, 'DPB');

    // Null sender: the failure goes to the postmaster as a double bounce from double-bounce@, never to <>.
    const nid = await h.submit('', ['unknown@example.test']);
    const all = await h.senderSink.waitFor(2);
    const db = all[1];
    assert.equal(db.from, 'double-bounce@backup.test');
    assert.deepEqual(db.to, ['postmaster@sender.test']);
    assert.match(db.raw.toString(), /Subject: Postmaster Copy: Undelivered Mail/);
    await h.waitLine(new RegExp(`^${nid}: removed$`));
    for (const msg of [...h.senderSink.messages, ...h.primary!.messages]) assert.ok(msg.to.every((t) => t !== ''));
  } finally {
    await h.close();
  }
});

test('a failed double bounce is discarded, never a third notice', async () => {
  const h = await startHarness({ ...FAST, backstop_destination_watch: false }, { primary: { users: [] }, doubleBounceRecipient: 'postmaster@example.test' });
  try {
    const id = await h.submit('', ['nobody@example.test']);
    await h.waitLine(new RegExp(`^${id}: removed$`));
    const db = (await h.waitLine(new RegExp(`^${id}: postmaster non-delivery notification: `))).split(': ').pop()!;
    await h.waitLine(new RegExp(`^${db}: discarding undeliverable double bounce$`));
    await h.waitLine(new RegExp(`^${db}: removed$`));
    assert.equal(h.queue.size, 0);
    assert.equal(h.senderSink.messages.length, 0);
  } finally {
    await h.close();
  }
});

test('maximal_queue_lifetime: an expired message is returned with a DSN (status=expired, returned to sender)', async () => {
  const h = await startHarness({ ...FAST, maximal_queue_lifetime: 0, backstop_destination_watch: false }, { primary: false });
  try {
    const id = await h.submit('s@sender.test', ['a@example.test']);
    await h.waitLine(new RegExp(`^${id}: from=<s@sender.test>, status=expired, returned to sender$`));
    const [dsn] = await h.senderSink.waitFor(1);
    const text = dsn.raw.toString();
    assert.deepEqual(dsn.to, ['s@sender.test']);
    assert.match(text, /Final-Recipient: rfc822; a@example.test\r\nAction: failed\r\nStatus: 4.4.1\r\n/);
    assert.match(text, new RegExp(`Diagnostic-Code: X-Backstop; connect to mx1.example.test\\[127.0.0.2\\]:${h.port}: Connection refused`));
    await h.waitLine(new RegExp(`^${id}: removed$`));
  } finally {
    await h.close();
  }
});

test('bounce_queue_lifetime applies to null-sender mail; delay_warning_time sends one delay notice', async () => {
  const h = await startHarness({ ...FAST, bounce_queue_lifetime: 0, delay_warning_time: 1, backstop_destination_watch: false }, { primary: false });
  try {
    const nid = await h.submit('', ['a@example.test']);
    await h.waitLine(new RegExp(`^${nid}: from=<>, status=expired, returned to sender$`));
    const old = await h.submit('s@sender.test', ['b@example.test'], 'old', Date.now() - 5000);
    const [notice] = await h.senderSink.waitFor(2, 5000).then((m) => m.filter((x) => x.to[0] === 's@sender.test'));
    assert.match(notice.raw.toString(), /Subject: Delayed Mail \(still being retried\)/);
    assert.match(notice.raw.toString(), /Action: delayed/);
    await until(() => h.queue.get(old)?.retry.delayWarningSent === true, 3000, 'delay warning flag');
    // The next pass sends no second warning.
    await until(() => (h.queue.get(old)?.retry.attempts ?? 0) >= 2, 5000, 'second attempt');
    assert.equal(h.senderSink.messages.filter((x) => x.to[0] === 's@sender.test').length, 1);
  } finally {
    await h.close();
  }
});

test('flushDomain (ETRN, postqueue -s) and flushAll (postqueue -f) deliver deferred mail at once', async () => {
  const h = await startHarness({ ...FAST, minimal_backoff_time: 300, queue_run_delay: 300, backstop_destination_watch: false, fast_flush_domains: ['relay.test'] }, { primary: false });
  try {
    const id = await h.submit('s@sender.test', ['a@example.test']);
    await until(() => h.queue.get(id)?.queue === 'deferred', 5000, 'deferral');
    assert.equal(await h.qmgr.flushDomain('other.test'), false, 'no mail, not in fast_flush_domains');
    assert.equal(await h.qmgr.flushDomain('sub.relay.test'), true, 'fast_flush_domains (parent matches)');
    await h.startPrimary();
    await sleep(300);
    assert.equal(h.primary!.messages.length, 0, 'nothing without a command (watch off, long backoff)');
    assert.equal(await h.qmgr.flushDomain('EXAMPLE.test'), true);
    await h.primary!.waitFor(1, 3000);
    await h.waitLine(new RegExp(`^${id}: removed$`));

    await h.stopPrimary();
    const id2 = await h.submit('s@sender.test', ['b@example.test']);
    await until(() => h.queue.get(id2)?.queue === 'deferred', 5000, 'deferral');
    await h.startPrimary();
    const ctl = controlHandlers(h.qmgr, h.queue);
    await ctl.flush();
    await h.primary!.waitFor(1, 3000);
    await h.waitLine(new RegExp(`^${id2}: removed$`));
    assert.equal(await ctl.flushSite('example.test'), 'deny', 'no more mail for it');
    assert.equal(await ctl.flushSite('bad site'), 'bad');
  } finally {
    await h.close();
  }
});

test('control handlers: hold keeps mail, release and requeue bring it back, delete removes it', async () => {
  const h = await startHarness({ ...FAST, minimal_backoff_time: 300, queue_run_delay: 300, backstop_destination_watch: false }, { primary: false });
  try {
    const ctl = controlHandlers(h.qmgr, h.queue);
    const a = await h.submit('s@sender.test', ['a@example.test']);
    const b = await h.submit('s@sender.test', ['b@example.test']);
    await until(() => h.queue.get(a)?.queue === 'deferred' && h.queue.get(b)?.queue === 'deferred', 5000, 'deferral');
    assert.deepEqual((await ctl.hold({ ids: [a] })).ids, [a]);
    assert.equal(h.queue.get(a)!.queue, 'hold');
    await h.startPrimary();
    await ctl.flush();
    await h.primary!.waitFor(1, 3000);
    assert.deepEqual(h.primary!.messages[0].to, ['b@example.test']);
    assert.equal(h.queue.get(a)!.queue, 'hold', 'held mail is not flushed');
    await ctl.release({ ids: [a] });
    assert.equal(h.queue.get(a)!.queue, 'deferred');
    await ctl.requeue({ ids: 'ALL' });
    await h.primary!.waitFor(2, 3000);
    await h.waitLine(new RegExp(`^${a}: removed$`));
    await h.stopPrimary();
    const c = await h.submit('s@sender.test', ['c@example.test']);
    await until(() => h.queue.get(c)?.queue === 'deferred', 5000, 'deferral');
    assert.equal((await ctl.delete({ ids: [c] })).count, 1);
    assert.equal(h.queue.get(c), undefined);
  } finally {
    await h.close();
  }
});

test('concurrency never exceeds the destination limit; recipients are batched per recipient limit', async () => {
  const h = await startHarness({ ...FAST, default_destination_concurrency_limit: 3, initial_destination_concurrency: 2, default_destination_recipient_limit: 2 }, { primary: { delayMs: 30 } });
  try {
    for (let i = 0; i < 30; i++) await h.submit('s@sender.test', [`a${i}@example.test`]);
    await h.submit('s@sender.test', ['x1@example.test', 'x2@example.test', 'x3@example.test', 'x4@example.test', 'x5@example.test']);
    await h.primary!.waitFor(33, 10_000);
    assert.ok(h.primary!.peakConnections <= 3, `peak ${h.primary!.peakConnections}`);
    const big = h.primary!.messages.filter((m) => m.to[0].startsWith('x'));
    assert.deepEqual(big.map((m) => m.to.length).sort(), [1, 2, 2]);
    // Deliveries in flight: three per connection (one awaiting its end-of-data reply, one on the
    // connection, one waiting to ride behind the end of data).
    const peak = h.qmgr.stats().destinations[0].peak;
    assert.ok(peak > 3 && peak <= 9, `peak ${peak}`);
    await until(() => h.queue.size === 0, 5000, 'empty queue');
  } finally {
    await h.close();
  }
});

test('a returning primary that answers 421 to every second connection: the flush slows down and completes, nothing lost or bounced', async () => {
  const h = await startHarness({ ...FAST, default_destination_concurrency_limit: 10, initial_destination_concurrency: 5 }, { primary: false });
  try {
    const N = 60;
    const ids: string[] = [];
    for (let i = 0; i < N; i++) ids.push(await h.submit('s@sender.test', [`r${i}@example.test`]));
    await until(() => ids.every((id) => h.queue.get(id)?.queue === 'deferred'), 10_000, 'all deferred while the primary is down');
    const primary = await h.startPrimary({ connectReply: (n) => (n % 2 === 0 ? { code: 421, text: '4.3.2 Service shutting down, try again' } : undefined) });
    await primary.waitFor(N, 40_000);
    await until(() => h.queue.size === 0, 10_000, 'empty queue');
    const got = primary.messages.map((m) => m.to[0]);
    assert.equal(new Set(got).size, N, 'every message arrived');
    assert.equal(got.length, N, 'none twice');
    assert.ok(primary.connections >= 2, 'the 421s were met');
    assert.ok(primary.peakConnections <= 10, `peak ${primary.peakConnections} within the limit`);
    assert.ok(h.lines.some((l) => /status=deferred \(host mx1\.example\.test\[127\.0\.0\.2\] refused to talk to me: 421 4\.3\.2/.test(l)), 'a 421 greeting defers, as Postfix logs it');
    assert.equal(h.lines.filter((l) => /status=bounced|sender non-delivery notification/.test(l)).length, 0, 'nothing bounced');
    assert.equal(h.senderSink.messages.length, 0, 'no notice to the sender');
  } finally {
    await h.close();
  }
});

test('start-up: active mail is scheduled at once, deferred mail when due', async () => {
  const h = await startHarness({ ...FAST, backstop_destination_watch: false }, { start: false });
  try {
    const a = await h.submit('s@sender.test', ['a@example.test']);
    const b = await h.submit('s@sender.test', ['b@example.test']);
    await h.queue.defer(b, Date.now() + 800, 'earlier failure');
    assert.equal(h.queue.get(b)!.queue, 'deferred');
    await h.qmgr.start();
    await h.primary!.waitFor(1, 3000);
    assert.deepEqual(h.primary!.messages[0].to, ['a@example.test']);
    await h.primary!.waitFor(2, 4000);
    await h.waitLine(new RegExp(`^${b}: removed$`));
    assert.equal(h.queue.size, 0);
    void a;
  } finally {
    await h.close();
  }
});
