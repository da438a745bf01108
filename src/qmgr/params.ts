// The parameters the queue manager reads, with Postfix's names, in plain units (seconds,
// booleans, lists) so that a queue manager can be built without a configuration file.
// QMGR_DEFAULTS is not a second copy of the defaults: it is read from the parameter registry
// (what `postconf -d` prints) through the same typed readers as main.cf, so the two cannot drift.
// Trusts the config module's registry and validation.

import { defaultConfig, type ParamReader } from '../config/index.js';

/** Parameters with Postfix's names; times in seconds. */
export interface QmgrParams {
  default_destination_concurrency_limit: number;
  initial_destination_concurrency: number;
  default_destination_recipient_limit: number;
  default_destination_concurrency_failed_cohort_limit: number;
  minimal_backoff_time: number;
  maximal_backoff_time: number;
  queue_run_delay: number;
  maximal_queue_lifetime: number;
  bounce_queue_lifetime: number;
  delay_warning_time: number;
  qmgr_message_active_limit: number;
  backstop_destination_probe_interval: number;
  backstop_destination_watch: boolean;
  /** Domains eligible for ETRN/postqueue -s even without queued mail (parent domains match subdomains). */
  fast_flush_domains: string[];
}

/** The queue manager's parameters as `p` has them (main.cf, or the registry's defaults). */
export function qmgrParamsFrom(p: ParamReader): QmgrParams {
  return {
    // The smtp transport's own limits, which default to the default_destination_* ones.
    default_destination_concurrency_limit: p.int('smtp_destination_concurrency_limit'),
    initial_destination_concurrency: p.int('initial_destination_concurrency'),
    default_destination_recipient_limit: p.int('smtp_destination_recipient_limit'),
    default_destination_concurrency_failed_cohort_limit: p.int('default_destination_concurrency_failed_cohort_limit'),
    minimal_backoff_time: p.time('minimal_backoff_time'),
    maximal_backoff_time: p.time('maximal_backoff_time'),
    queue_run_delay: p.time('queue_run_delay'),
    maximal_queue_lifetime: p.time('maximal_queue_lifetime'),
    bounce_queue_lifetime: p.time('bounce_queue_lifetime'),
    delay_warning_time: p.time('delay_warning_time'),
    qmgr_message_active_limit: p.int('qmgr_message_active_limit'),
    backstop_destination_probe_interval: p.time('backstop_destination_probe_interval'),
    backstop_destination_watch: p.bool('backstop_destination_watch'),
    fast_flush_domains: p.list('fast_flush_domains'),
  };
}

/** The registry's defaults (`postconf -d`), for a queue manager built without main.cf. */
export const QMGR_DEFAULTS: Readonly<QmgrParams> = qmgrParamsFrom(defaultConfig());
