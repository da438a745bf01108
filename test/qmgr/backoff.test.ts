// Unit tests: Postfix's backoff and lifetime arithmetic, slow start and the dead list.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, nextAttemptTime, isExpired, lifetimeFor, delayWarningDue, Destination, domainListMatch } from '../../src/qmgr/index.js';

const P = { minimalBackoffTime: 300, maximalBackoffTime: 4000 };

test('backoff: next attempt is now + clamp(age, minimal_backoff_time, maximal_backoff_time)', () => {
  const arrival = 1_000_000_000;
  const cases = [
    { desc: 'first failure right after arrival → minimal', age: 2, delay: 300 },
    { desc: 'age below minimal → minimal', age: 299, delay: 300 },
    { desc: 'age between → the age (doubling per attempt)', age: 600, delay: 600 },
    { desc: 'age 1200 → 1200', age: 1200, delay: 1200 },
    { desc: 'age at maximal → maximal', age: 4000, delay: 4000 },
    { desc: 'age past maximal → maximal', age: 5 * 86400, delay: 4000 },
    { desc: 'clock before arrival → minimal', age: -50, delay: 300 },
  ];
  for (const c of cases) {
    const now = arrival + c.age * 1000;
    assert.equal(backoffDelay(arrival, now, P), c.delay * 1000, c.desc);
    assert.equal(nextAttemptTime(arrival, now, P), now + c.delay * 1000, c.desc);
  }
});

test('backoff: a controllable clock walks a message through its retries as Postfix schedules them', () => {
  let now = 0;
  const arrival = now;
  const attempts: number[] = [];
  // Each attempt happens when due: the delay roughly doubles (age-based), then stays at 4000 s.
  for (let i = 0; i < 8; i++) {
    attempts.push(now / 1000);
    now = nextAttemptTime(arrival, now, P);
  }
  assert.deepEqual(attempts, [0, 300, 600, 1200, 2400, 4800, 8800, 12800]);
});

test('backoff: maximal below minimal uses minimal', () => {
  assert.equal(backoffDelay(0, 10_000_000, { minimalBackoffTime: 60, maximalBackoffTime: 10 }), 60_000);
});

test('lifetime: null sender uses bounce_queue_lifetime; expiry at or after the lifetime; forced expiry', () => {
  const L = { maximalQueueLifetime: 5 * 86400, bounceQueueLifetime: 86400 };
  assert.equal(lifetimeFor('a@b', L), 5 * 86400);
  assert.equal(lifetimeFor('', L), 86400);
  assert.equal(isExpired('a@b', 0, 86400_000, L), false);
  assert.equal(isExpired('', 0, 86400_000, L), true);
  assert.equal(isExpired('a@b', 0, 5 * 86400_000 - 1, L), false);
  assert.equal(isExpired('a@b', 0, 5 * 86400_000, L), true);
  assert.equal(isExpired('a@b', 0, 1, L, true), true);
  assert.equal(isExpired('a@b', 0, 0, { maximalQueueLifetime: 0, bounceQueueLifetime: 0 }), true, 'lifetime 0: first failure returns');
});

test('delay warning: only when enabled, not sent, and old enough', () => {
  assert.equal(delayWarningDue(0, 10_000_000, 0, false), false);
  assert.equal(delayWarningDue(0, 3599_000, 3600, false), false);
  assert.equal(delayWarningDue(0, 3600_000, 3600, false), true);
  assert.equal(delayWarningDue(0, 3600_000, 3600, true), false);
});

const hop = { transport: 'smtp', destinations: [{ host: 'example.test', port: 25, mx: true }], source: 'recipient domain' as const, key: 'example.test' };

test('destination: slow start from initial concurrency up to the limit, one step per window of successes', () => {
  const d = new Destination(hop, { concurrencyLimit: 8, initialConcurrency: 2, failedCohortLimit: 1 });
  assert.equal(d.slots(), 2);
  d.success();
  d.success();
  assert.equal(Math.floor(d.window), 3);
  for (let i = 0; i < 3; i++) d.success();
  assert.equal(Math.floor(d.window), 4);
  for (let i = 0; i < 100; i++) d.success();
  assert.equal(d.window, 8);
  d.inflight = 5;
  assert.equal(d.slots(), 3);
});

test('destination: a cohort of site failures makes it dead for the suspend time; revive restarts slow start', () => {
  const d = new Destination(hop, { concurrencyLimit: 20, initialConcurrency: 4, failedCohortLimit: 1 });
  let dead = false;
  for (let i = 0; i < 3; i++) dead = d.failure(1000, 'connect to x: Connection refused', 300_000);
  assert.equal(dead, false);
  assert.equal(d.isDead(1000), false);
  assert.ok(d.window < 4 && d.window >= 1);
  dead = d.failure(1000, 'connect to x: Connection refused', 300_000);
  assert.equal(dead, true);
  assert.equal(d.isDead(1000), true);
  assert.equal(d.isDead(301_000), false);
  assert.equal(d.deadReason, 'connect to x: Connection refused');
  d.revive();
  assert.equal(d.isDead(1000), false);
  assert.equal(d.window, 4);
  d.failure(2000, 'x', 1000);
  d.success();
  assert.equal(d.failedCohorts, 0);
  assert.equal(d.unreachable, false);
});

test('domainListMatch: exact, parent matches subdomain, .domain form, table entries ignored', () => {
  const cases = [
    { d: 'example.test', list: ['example.test'], want: true },
    { d: 'sub.example.test', list: ['example.test'], want: true },
    { d: 'example.test', list: ['.example.test'], want: false },
    { d: 'a.example.test', list: ['.example.test'], want: true },
    { d: 'EXAMPLE.test.', list: ['example.test'], want: true },
    { d: 'badexample.test', list: ['example.test'], want: false },
    { d: 'example.test', list: ['hash:/etc/x'], want: false },
    { d: 'example.test', list: [], want: false },
  ];
  for (const c of cases) assert.equal(domainListMatch(c.d, c.list), c.want, `${c.d} in ${c.list}`);
});
