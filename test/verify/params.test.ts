// The verify service's defaults come from the parameter registry (what `postconf -d` prints).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig } from '../../src/config/index.js';
import { DEFAULT_VERIFY_PARAMS } from '../../src/verify/index.js';

test('DEFAULT_VERIFY_PARAMS: Postfix defaults, read from the registry', () => {
  assert.deepEqual(DEFAULT_VERIFY_PARAMS, {
    address_verify_positive_refresh_time: 7 * 86400,
    address_verify_positive_expire_time: 31 * 86400,
    address_verify_negative_refresh_time: 3 * 3600,
    address_verify_negative_expire_time: 3 * 86400,
    address_verify_negative_cache: true,
    address_verify_poll_count: 3,
    address_verify_poll_delay: 3,
    address_verify_cache_cleanup_interval: 12 * 3600,
    address_verify_sender: 'double-bounce',
    address_verify_sender_ttl: 0,
    address_verify_pending_request_limit: 5000,
    // $myorigin = $myhostname, as postconf -d prints it (the hand copy said "localhost").
    myorigin: defaultConfig().str('myhostname'),
    backstop_verify_reprobe_on_return: true,
    backstop_verify_probe_concurrency: 20,
  });
});
