// The verify service against a real primary (SMTP sink on 127.0.0.2, found through a real DNS
// server) with the SMTP client's real probe(); a controllable clock drives refresh and expiry.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createVerifier, MemoryStore, parseRecord, STAT_OK, STAT_DEFER, STAT_BOUNCE, CLEANUP_KEY, type ProbeResult } from '../../src/verify/index.js';
import { startPrimary, ACCEPTED, Clock, captureLog, type Primary } from './helpers.js';
import { sleep } from '../helpers/net.js';

let primary: Primary;
before(async () => {
  primary = await startPrimary();
});
after(async () => {
  await primary.close();
});

const DAY = 86400;
const fast = { address_verify_poll_delay: 1, address_verify_poll_count: 3 };

test('known user: deliverable, cached in Postfix form, the probe logged as deliverable', async () => {
  const store = new MemoryStore();
  const clock = new Clock();
  const v = createVerifier({ store, prober: primary.prober, params: { ...fast, myorigin: 'mx2.backup.test' }, now: clock.now, log: captureLog().log, cleanupTimer: false });
  const rcpt0 = primary.sink.rcptCommands;
  const t0 = Date.now();
  assert.deepEqual(await v.check('user@primary.test', 'recipient'), { status: 'deliverable', text: ACCEPTED });
  assert.ok(Date.now() - t0 < 1000, 'answered when the probe completed, not at the next poll');
  assert.equal(store.get('user@primary.test'), `0:0:${clock.sec}:${ACCEPTED}`);
  assert.equal(primary.sink.rcptCommands - rcpt0, 1);
  assert.equal(primary.sink.messages.length, 0, 'a probe never sends DATA');
  assert.ok(primary.lines.some((l) => /to=<user@primary\.test>, relay=mx1\.primary\.test\[127\.0\.0\.2\]:\d+, .*dsn=2\.\d\.\d, status=deliverable \(250 Accepted\)/.test(l.text)), primary.lines.map((l) => l.text).join('\n'));
  // Second check: from the cache, no probe.
  assert.deepEqual(await v.check('USER@primary.test', 'recipient'), { status: 'deliverable', text: ACCEPTED });
  assert.equal(primary.sink.rcptCommands - rcpt0, 1);
  await v.close();
});

test('unknown user: undeliverable with the primary text, cached as BOUNCE', async () => {
  const store = new MemoryStore();
  const clock = new Clock();
  const v = createVerifier({ store, prober: primary.prober, params: fast, now: clock.now, log: captureLog().log, cleanupTimer: false });
  const r = await v.check('nobody@primary.test', 'recipient');
  assert.equal(r.status, 'undeliverable');
  assert.match(r.text, /^host mx1\.primary\.test\[127\.0\.0\.2\] said: 550 5\.1\.1 .*User unknown.* \(in reply to RCPT TO command\)$/);
  const rec = parseRecord(store.get('nobody@primary.test')!)!;
  assert.equal(rec.status, STAT_BOUNCE);
  assert.equal(rec.text, r.text);
  await v.close();
});

test('probe sender: double-bounce@myorigin by default, rotation with address_verify_sender_ttl, null sender', async () => {
  const senders: string[] = [];
  const prober = async (_a: string, s: string): Promise<ProbeResult> => {
    senders.push(s);
    return { status: 'deliverable', dsn: '2.1.5', text: '250 2.1.5 Ok', relay: 'x' };
  };
  const clock = new Clock(1795546890_000);
  const v = createVerifier({ prober, params: { myorigin: 'mx2.backup.test' }, now: clock.now, log: captureLog().log, cleanupTimer: false });
  await v.check('a@primary.test', 'recipient');
  assert.deepEqual(senders, ['double-bounce@mx2.backup.test']);
  assert.equal(v.isProbeSender('double-bounce@mx2.backup.test'), true);
  assert.equal(v.isProbeSender('<Double-Bounce@MX2.backup.test>'), true);
  assert.equal(v.isProbeSender('double-bounce2@mx2.backup.test'), false);
  assert.equal(v.isProbeSender(''), false);
  await v.close();

  const r = createVerifier({ prober, params: { myorigin: 'mx2.backup.test', address_verify_sender: 'postmaster', address_verify_sender_ttl: 3600 }, now: clock.now, log: captureLog().log, cleanupTimer: false });
  const s1 = r.probeSender();
  // 1795546890 / 3600 = 498763 = 16·31³ + 23·31² + 0·31 + 4 → base 31 with Postfix's vowel-free digits
  assert.equal(s1, 'postmasterJR04@mx2.backup.test');
  assert.equal(r.isProbeSender(s1), true);
  clock.advance(3600);
  const s2 = r.probeSender();
  assert.notEqual(s2, s1);
  assert.equal(r.isProbeSender(s1), true, 'previous slot still valid');
  clock.advance(2 * 3600);
  assert.equal(r.isProbeSender(s1), false, 'three slots later it is not');
  assert.equal(r.isProbeSender('postmaster@mx2.backup.test'), false);
  await r.close();

  const n = createVerifier({ prober, params: { address_verify_sender: '<>' }, now: clock.now, log: captureLog().log, cleanupTimer: false });
  assert.equal(n.probeSender(), '');
  assert.equal(n.isProbeSender(''), true);
  assert.equal(n.isProbeSender('double-bounce@localhost'), false);
  await n.close();
  assert.throws(() => createVerifier({ prober, params: { address_verify_sender: '@x' } }), /^Error: parameter address_verify_sender: value "@x" must not start with '@'$/);
  assert.throws(() => createVerifier({ prober, params: { address_verify_sender: 'x@' } }), /^Error: parameter address_verify_sender: value "x@" must not end with '@'$/);
  assert.throws(() => createVerifier({ prober, params: { backstop_verify_probe_concurrency: 0 } }), /^Error: backstop_verify_probe_concurrency: must be 1 or more, got 0$/);
  assert.throws(() => createVerifier({ prober, params: { address_verify_poll_count: 0 } }), /^Error: address_verify_poll_count: must be 1 or more, got 0$/);
});

test('primary down: cached user deliverable, uncached tempfail with the connect error, refresh keeps the positive entry', async () => {
  const p2 = await startPrimary({});
  const store = new MemoryStore();
  const clock = new Clock();
  const v = createVerifier({ store, prober: p2.prober, params: fast, now: clock.now, log: captureLog().log, cleanupTimer: false });
  assert.equal((await v.check('alice@primary.test', 'recipient')).status, 'deliverable');
  const good = store.get('alice@primary.test')!;
  await p2.stop();
  assert.equal((await v.check('alice@primary.test', 'recipient')).status, 'deliverable');
  const r = await v.check('bob@primary.test', 'recipient');
  assert.equal(r.status, 'tempfail');
  assert.match(r.text, /^connect to mx1\.primary\.test\[127\.0\.0\.2\]:\d+: Connection refused$/);
  assert.equal(parseRecord(store.get('bob@primary.test')!)!.status, STAT_DEFER);
  // 8 days later: refresh is due; the old answer serves while the refresh probe runs and fails.
  clock.advance(8 * DAY);
  assert.deepEqual(await v.check('alice@primary.test', 'recipient'), { status: 'deliverable', text: ACCEPTED });
  const marked = parseRecord(store.get('alice@primary.test')!)!;
  assert.equal(marked.probed, clock.sec, 'probe outstanding is recorded');
  await sleep(300);
  const after = parseRecord(store.get('alice@primary.test')!)!;
  assert.equal(after.status, STAT_OK, 'a failed refresh never replaces a good entry');
  assert.equal(after.updated, parseRecord(good)!.updated);
  // At most one probe per address per 1000 s.
  const probes = v.stats.probes;
  clock.advance(999);
  await v.check('alice@primary.test', 'recipient');
  assert.equal(v.stats.probes, probes);
  clock.advance(2);
  await v.check('alice@primary.test', 'recipient');
  assert.equal(v.stats.probes, probes + 1);
  // Past 31 days the entry has expired: unknown, probed, and the primary is still down → tempfail.
  clock.advance(24 * DAY);
  const r2 = await v.check('alice@primary.test', 'recipient');
  assert.equal(r2.status, 'tempfail');
  await v.close();
  await p2.close();
});

test('slow primary: pending after the poll budget, then the cached answer', async () => {
  const p3 = await startPrimary({ delayMs: 700 });
  const clock = new Clock();
  const v = createVerifier({ prober: p3.prober, params: { address_verify_poll_count: 2, address_verify_poll_delay: 0.3 }, now: clock.now, log: captureLog().log, cleanupTimer: false });
  const t0 = Date.now();
  assert.deepEqual(await v.check('user@primary.test', 'recipient'), { status: 'pending', text: 'Address verification in progress' });
  const took = Date.now() - t0;
  assert.ok(took >= 280 && took < 1000, `waited the budget (1 × 0.3 s), took ${took} ms`);
  await sleep(900);
  assert.equal((await v.check('user@primary.test', 'recipient')).status, 'deliverable');
  // Poll count 1: crude greylisting, the first request is always deferred.
  const g = createVerifier({ prober: p3.prober, params: { address_verify_poll_count: 1 }, now: clock.now, log: captureLog().log, cleanupTimer: false });
  assert.equal((await g.check('alice@primary.test', 'recipient')).status, 'pending');
  await g.close();
  await v.close();
  await p3.close();
});

test('one probe for 500 concurrent checks of one address', async () => {
  const clock = new Clock();
  const rcpt0 = primary.sink.rcptCommands;
  const v = createVerifier({ prober: primary.prober, params: fast, now: clock.now, log: captureLog().log, cleanupTimer: false });
  const results = await Promise.all(Array.from({ length: 500 }, () => v.check('alice@primary.test', 'recipient')));
  assert.ok(results.every((r) => r.status === 'deliverable'), 'all deliverable');
  assert.equal(primary.sink.rcptCommands - rcpt0, 1);
  assert.equal(v.stats.probes, 1);
  await v.close();
});

test('probe storm: bounded per destination, queued not failed', async () => {
  let now = 0;
  let peak = 0;
  const prober = async (a: string): Promise<ProbeResult> => {
    peak = Math.max(peak, ++now);
    await sleep(5);
    now--;
    return a.startsWith('bad') ? { status: 'undeliverable', dsn: '5.1.1', text: 'host x said: 550 5.1.1 no', relay: 'x' } : { status: 'deliverable', dsn: '2.1.5', text: '250 2.1.5 Ok', relay: 'x' };
  };
  const v = createVerifier({ prober, params: { backstop_verify_probe_concurrency: 7, address_verify_poll_delay: 5 }, log: captureLog().log, cleanupTimer: false });
  const addrs = Array.from({ length: 300 }, (_, i) => `${i % 3 ? 'u' : 'bad'}${i}@primary.test`);
  const res = await Promise.all(addrs.map((a) => v.check(a, 'recipient')));
  assert.equal(peak, 7);
  assert.equal(v.stats.peakPerDestination, 7);
  assert.equal(res.filter((r) => r.status === 'undeliverable').length, 100);
  assert.equal(res.filter((r) => r.status === 'deliverable').length, 200);
  await v.close();
});

test('address_verify_pending_request_limit: beyond it the answer is pending and nothing is recorded', async () => {
  const store = new MemoryStore();
  const { log, lines } = captureLog();
  const prober = async (): Promise<ProbeResult> => {
    await sleep(50);
    return { status: 'deliverable', dsn: '2.1.5', text: '250 2.1.5 Ok', relay: 'x' };
  };
  const v = createVerifier({ store, prober, params: { address_verify_pending_request_limit: 2, address_verify_poll_count: 1 }, log, cleanupTimer: false });
  const r = await Promise.all(['a@x.test', 'b@x.test', 'c@x.test'].map((a) => v.check(a, 'recipient')));
  assert.ok(r.every((x) => x.status === 'pending'), 'all pending');
  assert.equal(store.get('c@x.test'), undefined);
  assert.ok(lines.includes('warning: address verification request for c@x.test not sent: 2 requests pending (address_verify_pending_request_limit)'), lines.join('\n'));
  await sleep(100);
  assert.equal((await v.check('c@x.test', 'recipient')).status, 'pending', 'now probed');
  await sleep(100);
  assert.equal((await v.check('c@x.test', 'recipient')).status, 'deliverable');
  await v.close();
});

test('negative entries: refreshed after 3h, expired after 3d; negative_cache = no keeps none', async () => {
  let answer: ProbeResult = { status: 'undeliverable', dsn: '5.1.1', text: 'host x said: 550 5.1.1 unknown (in reply to RCPT TO command)', relay: 'x' };
  let probes = 0;
  const prober = async (): Promise<ProbeResult> => {
    probes++;
    return answer;
  };
  const clock = new Clock();
  const store = new MemoryStore();
  const v = createVerifier({ store, prober, params: fast, now: clock.now, log: captureLog().log, cleanupTimer: false });
  assert.equal((await v.check('x@d.test', 'recipient')).status, 'undeliverable');
  clock.advance(3 * 3600);
  assert.equal((await v.check('x@d.test', 'recipient')).status, 'undeliverable');
  assert.equal(probes, 1, 'not yet due at exactly 3h');
  answer = { status: 'deliverable', dsn: '2.1.5', text: '250 2.1.5 Ok', relay: 'x' };
  clock.advance(1);
  assert.equal((await v.check('x@d.test', 'recipient')).status, 'undeliverable', 'old answer while the refresh runs');
  assert.equal(probes, 2);
  await sleep(20);
  assert.equal((await v.check('x@d.test', 'recipient')).status, 'deliverable');
  await v.close();

  const s2 = new MemoryStore();
  answer = { status: 'undeliverable', dsn: '5.1.1', text: 'host x said: 550 no', relay: 'x' };
  const n = createVerifier({ store: s2, prober, params: { ...fast, address_verify_negative_cache: false }, now: clock.now, log: captureLog().log, cleanupTimer: false });
  assert.deepEqual(await n.check('y@d.test', 'recipient'), { status: 'undeliverable', text: 'host x said: 550 no' });
  assert.equal(s2.get('y@d.test'), undefined, 'no negative entry');
  const before = probes;
  assert.equal((await n.check('y@d.test', 'recipient')).status, 'undeliverable');
  assert.equal(probes, before + 1, 'a probe for every lookup');
  // A stale negative record is deleted on query when negative caching is off.
  s2.put('z@d.test', `2:0:${clock.sec - 4 * DAY}:old`);
  await n.check('z@d.test', 'recipient');
  assert.equal(s2.get('z@d.test'), undefined);
  await n.close();
});

test('malformed record: warned about and probed afresh', async () => {
  const store = new MemoryStore();
  const { log, lines } = captureLog();
  store.put('m@d.test', 'garbage');
  store.put('z@d.test', '0:0:0:zero stamps');
  const v = createVerifier({ store, prober: async () => ({ status: 'deliverable', dsn: '2.1.5', text: '250 2.1.5 Ok', relay: 'x' }), params: { ...fast, address_verify_cache_cleanup_interval: 0 }, log, cleanupTimer: false });
  assert.equal((await v.check('m@d.test', 'recipient')).status, 'deliverable');
  assert.equal((await v.check('z@d.test', 'recipient')).status, 'deliverable');
  assert.ok(lines.includes('warning: bad address verify table entry: garbage'), lines.join('\n'));
  assert.ok(lines.includes('warning: bad address verify table entry: 0:0:0:zero stamps'), lines.join('\n'));
  await v.close();
});

test('a prober that throws counts as deferred; the null sender is not probed; keys write ":" as "_"', async () => {
  const store = new MemoryStore();
  const v = createVerifier({ store, prober: async () => { throw new Error('no route'); }, params: fast, log: captureLog().log, cleanupTimer: false });
  assert.deepEqual(await v.check('u@[ipv6:2001:db8::1]', 'recipient'), { status: 'tempfail', text: 'address verification problem: no route' });
  assert.equal(parseRecord(store.get('u@[ipv6_2001_db8__1]')!)!.status, STAT_DEFER);
  assert.deepEqual(await v.check('', 'sender'), { status: 'deliverable', text: '' });
  await v.close();
});

test('expiry and cleanup: expired entries dropped with the log line and the bookkeeping key', async () => {
  const clock = new Clock();
  const store = new MemoryStore('btree:/var/lib/backstop/verify');
  const now = clock.sec;
  store.put('fresh@d.test', `0:0:${now - 30 * DAY}:250 ok`);
  store.put('old@d.test', `0:0:${now - 32 * DAY}:250 ok`);
  store.put('neg@d.test', `2:0:${now - 2 * DAY}:550 no`);
  store.put('oldneg@d.test', `1:0:${now - 4 * DAY}:connect failed`);
  store.put('todo@d.test', `3:${now - 10}:0:Address verification in progress`);
  store.put('lost@d.test', `3:${now - 2000}:0:Address verification in progress`);
  store.put('bad@d.test', 'junk');
  const { log, lines } = captureLog();
  const v = createVerifier({ store, prober: async () => ({ status: 'deliverable', dsn: '2.1.5', text: '250 2.1.5 Ok', relay: 'x' }), params: { address_verify_cache_cleanup_interval: 12 * 3600 }, now: clock.now, log, cleanupTimer: false });
  // The first query starts the first cleanup (no bookkeeping key yet).
  await v.check('fresh@d.test', 'recipient');
  await sleep(20);
  assert.ok(lines.includes('cache btree:/var/lib/backstop/verify full cleanup: retained=3 dropped=4 entries'), lines.join('\n'));
  assert.equal(store.get(CLEANUP_KEY), String(now));
  assert.deepEqual([...store.entries()].map(([k]) => k).sort(), [CLEANUP_KEY, 'fresh@d.test', 'neg@d.test', 'todo@d.test']);
  // Not again before the interval.
  clock.advance(6 * 3600);
  await v.check('fresh@d.test', 'recipient');
  await sleep(20);
  assert.equal(lines.filter((l) => l.includes('full cleanup')).length, 1);
  clock.advance(6 * 3600 + 1);
  await v.check('neg@d.test', 'recipient');
  await sleep(20);
  assert.equal(lines.filter((l) => l.includes('full cleanup')).length, 2);
  assert.equal(store.get(CLEANUP_KEY), String(clock.sec));
  await v.close();
  // A restarted service continues the schedule from the bookkeeping key.
  const { log: log2, lines: lines2 } = captureLog();
  const w = createVerifier({ store, prober: async () => ({ status: 'deliverable', dsn: '2.1.5', text: '250 2.1.5 Ok', relay: 'x' }), params: { address_verify_cache_cleanup_interval: 12 * 3600 }, now: clock.now, log: log2, cleanupTimer: false });
  await w.check('fresh@d.test', 'recipient');
  await sleep(20);
  assert.equal(lines2.filter((l) => l.includes('full cleanup')).length, 0);
  await w.close();
});

test('reprobe on return: DEFER entries are probed as soon as the destination answers again', async () => {
  const { EventEmitter } = await import('node:events');
  const events = new EventEmitter();
  const p4 = await startPrimary();
  await p4.stop();
  const store = new MemoryStore();
  const clock = new Clock();
  const { log, lines } = captureLog();
  const v = createVerifier({ store, prober: p4.prober, params: fast, now: clock.now, log, destinationEvents: events, cleanupTimer: false });
  assert.equal((await v.check('bob@primary.test', 'recipient')).status, 'tempfail');
  assert.equal((await v.check('alice@primary.test', 'recipient')).status, 'tempfail');
  store.put('other@elsewhere.test', `1:0:${clock.sec}:connect to x: refused`);
  await p4.restart();
  clock.advance(60);
  assert.equal(await v.destinationUp('PRIMARY.test'), 2);
  await sleep(300);
  assert.ok(lines.includes('destination primary.test is reachable again: re-probing 2 deferred addresses'), lines.join('\n'));
  assert.deepEqual(await v.check('bob@primary.test', 'recipient'), { status: 'deliverable', text: ACCEPTED });
  assert.equal(parseRecord(store.get('other@elsewhere.test')!)!.status, STAT_DEFER);
  // Through the event source.
  await p4.stop();
  store.put('carol@primary.test', `1:0:${clock.sec}:connect to x: refused`);
  await p4.restart({ users: ['carol@primary.test'] });
  events.emit('destinationUp', 'primary.test', 'primary.test');
  await sleep(300);
  assert.equal(parseRecord(store.get('carol@primary.test')!)!.status, STAT_OK);
  await v.close();
  // Switched off: nothing happens.
  const off = createVerifier({ store, prober: p4.prober, params: { backstop_verify_reprobe_on_return: false }, now: clock.now, log, destinationEvents: events, cleanupTimer: false });
  assert.equal(events.listenerCount('destinationUp'), 0);
  await off.close();
  await p4.close();
});
