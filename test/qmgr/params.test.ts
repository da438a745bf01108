// The queue manager's and the delivery client's defaults come from the parameter registry (what
// `postconf -d` prints), through the same readers as main.cf: a main.cf setting reaches them, and
// the values are Postfix's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Config, defaultConfig } from '../../src/config/index.js';
import { QMGR_DEFAULTS, qmgrParamsFrom } from '../../src/qmgr/index.js';
import { DEFAULT_TIMEOUTS, smtpTimeoutsFrom } from '../../src/smtp/index.js';

test('QMGR_DEFAULTS: Postfix defaults, read from the registry', () => {
  assert.deepEqual(QMGR_DEFAULTS, {
    default_destination_concurrency_limit: 20,
    initial_destination_concurrency: 5,
    default_destination_recipient_limit: 50,
    default_destination_concurrency_failed_cohort_limit: 1,
    minimal_backoff_time: 300,
    maximal_backoff_time: 4000,
    queue_run_delay: 300,
    maximal_queue_lifetime: 5 * 86400,
    bounce_queue_lifetime: 5 * 86400,
    delay_warning_time: 0,
    qmgr_message_active_limit: 20000,
    backstop_destination_probe_interval: 1,
    backstop_destination_watch: true,
    fast_flush_domains: [],
  });
  assert.deepEqual(qmgrParamsFrom(defaultConfig()), QMGR_DEFAULTS);
});

test('qmgrParamsFrom: main.cf values, smtp_destination_* falling back to default_destination_*', () => {
  const cases = [
    { desc: 'default limit', maincf: 'default_destination_concurrency_limit = 7', key: 'default_destination_concurrency_limit', expected: 7 },
    { desc: 'transport limit wins', maincf: 'default_destination_recipient_limit = 9\nsmtp_destination_recipient_limit = 3', key: 'default_destination_recipient_limit', expected: 3 },
    { desc: 'time unit', maincf: 'maximal_queue_lifetime = 2', key: 'maximal_queue_lifetime', expected: 2 * 86400 },
    { desc: 'list with $name', maincf: 'relay_domains = a.test, b.test', key: 'fast_flush_domains', expected: ['a.test', 'b.test'] },
  ] as const;
  for (const c of cases) assert.deepEqual(qmgrParamsFrom(Config.fromText(c.maincf))[c.key], c.expected, c.desc);
});

test('DEFAULT_TIMEOUTS: Postfix defaults, read from the registry', () => {
  assert.deepEqual(DEFAULT_TIMEOUTS, {
    smtp_connect_timeout: 30,
    smtp_helo_timeout: 300,
    smtp_starttls_timeout: 300,
    smtp_mail_timeout: 300,
    smtp_rcpt_timeout: 300,
    smtp_data_init_timeout: 120,
    smtp_data_xfer_timeout: 180,
    smtp_data_done_timeout: 600,
    smtp_rset_timeout: 20,
    smtp_quit_timeout: 300,
  });
  assert.equal(smtpTimeoutsFrom(Config.fromText('smtp_rset_timeout = 1m')).smtp_rset_timeout, 60);
});
