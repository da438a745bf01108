// The parameters the verify service reads, with Postfix's names (postconf(5)), in plain units
// (seconds, booleans) so the service can be built without a config file. The master fills them
// from main.cf with verifyParamsFrom(); DEFAULT_VERIFY_PARAMS reads the registry's defaults the
// same way. Trusts the config module's registry and validation.

import { defaultConfig, type ParamReader } from '../config/index.js';

export interface VerifyParams {
  address_verify_positive_refresh_time: number;
  address_verify_positive_expire_time: number;
  address_verify_negative_refresh_time: number;
  address_verify_negative_expire_time: number;
  address_verify_negative_cache: boolean;
  address_verify_poll_count: number;
  /** Seconds; fractions are allowed (tests). */
  address_verify_poll_delay: number;
  /** Seconds; 0 disables the periodic cleanup. */
  address_verify_cache_cleanup_interval: number;
  address_verify_sender: string;
  address_verify_sender_ttl: number;
  address_verify_pending_request_limit: number;
  myorigin: string;
  backstop_verify_reprobe_on_return: boolean;
  /** Probes in flight per destination (recipient domain) at most. */
  backstop_verify_probe_concurrency: number;
}

export function verifyParamsFrom(p: ParamReader): VerifyParams {
  return {
    address_verify_positive_refresh_time: p.time('address_verify_positive_refresh_time'),
    address_verify_positive_expire_time: p.time('address_verify_positive_expire_time'),
    address_verify_negative_refresh_time: p.time('address_verify_negative_refresh_time'),
    address_verify_negative_expire_time: p.time('address_verify_negative_expire_time'),
    address_verify_negative_cache: p.bool('address_verify_negative_cache'),
    address_verify_poll_count: p.int('address_verify_poll_count'),
    address_verify_poll_delay: p.time('address_verify_poll_delay'),
    address_verify_cache_cleanup_interval: p.time('address_verify_cache_cleanup_interval'),
    address_verify_sender: p.str('address_verify_sender'),
    address_verify_sender_ttl: p.time('address_verify_sender_ttl'),
    address_verify_pending_request_limit: p.int('address_verify_pending_request_limit'),
    myorigin: p.str('myorigin'),
    backstop_verify_reprobe_on_return: p.bool('backstop_verify_reprobe_on_return'),
    backstop_verify_probe_concurrency: p.int('backstop_verify_probe_concurrency'),
  };
}

/**
 * The registry's defaults (`postconf -d`), for a service built without main.cf: read through
 * verifyParamsFrom like main.cf, so the code and `postconf -d` cannot drift apart.
 */
export const DEFAULT_VERIFY_PARAMS: Readonly<VerifyParams> = verifyParamsFrom(defaultConfig());
