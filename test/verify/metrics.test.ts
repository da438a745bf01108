// The verify service's numbers for the metrics and `backstop status`: a lookup that waits for a
// probe is a miss, one answered from the cache a hit; each probe is counted by its result
// (against a real primary: an SMTP sink found through a real DNS server).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createVerifier, MemoryStore } from '../../src/verify/index.js';
import { hour, registry } from '../../src/observe/index.js';
import { startPrimary, Clock, captureLog, type Primary } from './helpers.js';

let primary: Primary;
before(async () => { primary = await startPrimary(); });
after(async () => { await primary.close(); });

async function value(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

test('lookups: a miss, then hits; probes by result', async () => {
  const v = createVerifier({ store: new MemoryStore(), prober: primary.prober, params: { address_verify_poll_delay: 1, address_verify_poll_count: 3 }, now: new Clock().now, log: captureLog().log, cleanupTimer: false });
  const before = {
    hit: await value('backstop_verify_cache_lookups_total', { result: 'hit' }),
    miss: await value('backstop_verify_cache_lookups_total', { result: 'miss' }),
    ok: await value('backstop_verify_probes_total', { status: 'deliverable' }),
    bad: await value('backstop_verify_probes_total', { status: 'undeliverable' }),
  };
  const hourBefore = hour.verify.totals();
  assert.equal((await v.check('alice@primary.test')).status, 'deliverable');
  assert.equal((await v.check('alice@primary.test')).status, 'deliverable');
  assert.equal((await v.check('alice@primary.test')).status, 'deliverable');
  assert.equal((await v.check('nobody@primary.test')).status, 'undeliverable');
  assert.equal(await value('backstop_verify_cache_lookups_total', { result: 'miss' }) - before.miss, 2);
  assert.equal(await value('backstop_verify_cache_lookups_total', { result: 'hit' }) - before.hit, 2);
  assert.equal(await value('backstop_verify_probes_total', { status: 'deliverable' }) - before.ok, 1);
  assert.equal(await value('backstop_verify_probes_total', { status: 'undeliverable' }) - before.bad, 1);
  const hourAfter = hour.verify.totals();
  assert.equal((hourAfter.hit ?? 0) - (hourBefore.hit ?? 0), 2);
  assert.equal((hourAfter.miss ?? 0) - (hourBefore.miss ?? 0), 2);
  await v.close();
});
