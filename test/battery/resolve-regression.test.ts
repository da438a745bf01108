// Regression (found by the open-relay battery): an unqualified RCPT such as <other.test> was
// classified as "ours" (no domain), permitted by permit_mx_backup / permit_auth_destination, and
// then delivered to other.test's MX. trivial-rewrite qualifies it with $myorigin first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveAddress } from '../../src/smtpd/check/index.js';

const opts = {
  allowPercentHack: true,
  swapBangpath: true,
  resolveDequoted: true,
  isLocal: async (d: string) => d === 'local.test',
  isRelay: async (d: string) => d === 'primary.test',
  myorigin: 'mx2.backup.test',
};

test('unqualified addresses are qualified with myorigin before classification', async () => {
  assert.deepEqual(await resolveAddress('<other.test>', opts), { address: 'other.test@mx2.backup.test', local: 'other.test', domain: 'mx2.backup.test', class: 'default', routed: false });
  assert.equal((await resolveAddress('x', { ...opts, myorigin: 'local.test' })).class, 'local');
  // A bang path is swapped, not qualified; a percent hack stays routed.
  assert.deepEqual(await resolveAddress('other.test!x', opts), { address: 'x@other.test', local: 'x', domain: 'other.test', class: 'default', routed: true });
  assert.equal((await resolveAddress('x%other.test', opts)).routed, true);
  // Without myorigin (callers that do not qualify) the old meaning stays.
  assert.equal((await resolveAddress('x', { ...opts, myorigin: undefined })).class, 'local');
});

// Regression (found by the open-relay battery's controls): <carol@primary.test.> was accepted as
// primary.test but missed transport_maps' "primary.test" entry, so it went to port 25 instead.
test('transport_maps keys ignore a trailing dot in the recipient domain', async () => {
  const { transportKeys } = await import('../../src/smtp/index.js');
  assert.deepEqual(transportKeys('carol@Primary.Test.'), ['carol@primary.test', 'primary.test', '.test', '*']);
});
