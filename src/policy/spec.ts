// The argument of check_policy_service: `inet:host:port`, `unix:path`, or Postfix 3.0's
// per-service form `{ inet:host:port, timeout=10s, default_action=DUNNO, max_idle=..., max_ttl=...,
// try_limit=..., retry_delay=..., policy_context=... }`. Settings not given come from the
// smtpd_policy_service_* parameters. Throws an Error naming the bad part.

import { parseTime, parseInt10, splitList } from '../config/index.js';
import { parseEndpoint, type PolicyServiceOptions } from './client.js';

export interface PolicySpec {
  endpoint: string;
  /** Settings given inside `{ ... }` (names without the smtpd_policy_service_ prefix). */
  settings: Record<string, string>;
}

const KNOWN = ['timeout', 'max_idle', 'max_ttl', 'try_limit', 'retry_delay', 'default_action', 'policy_context', 'request_limit'];

export function parsePolicySpec(arg: string): PolicySpec {
  const t = arg.trim();
  if (!t.startsWith('{')) {
    parseEndpoint(t);
    return { endpoint: t, settings: {} };
  }
  if (!t.endsWith('}')) throw new Error(`check_policy_service: missing "}" in "${arg}"`);
  const inner = t.slice(1, -1);
  // Split on commas only: default_action values contain spaces ("451 4.3.5 text").
  const parts = inner.split(',').map((p) => p.trim()).filter(Boolean);
  if (!parts.length) throw new Error(`check_policy_service: empty "{ }"`);
  const endpoint = parts[0];
  parseEndpoint(endpoint);
  const settings: Record<string, string> = {};
  for (const p of parts.slice(1)) {
    const m = /^([a-z_]+)\s*=\s*(.*)$/s.exec(p);
    if (!m) throw new Error(`check_policy_service ${endpoint}: bad setting "${p}" (expected name=value)`);
    if (!KNOWN.includes(m[1])) throw new Error(`check_policy_service ${endpoint}: unknown setting "${m[1]}" (known: ${KNOWN.join(', ')})`);
    settings[m[1]] = m[2].trim();
  }
  void splitList;
  return { endpoint, settings };
}

/** Reader of the smtpd_policy_service_* defaults. */
export interface PolicyDefaults {
  time(name: string): number;
  int(name: string): number;
  str(name: string): string;
}

/** Options for one service: the `{ }` settings over the global parameters. */
export function policyOptions(spec: PolicySpec, d: PolicyDefaults): Omit<PolicyServiceOptions, 'warn'> {
  const time = (k: string): number => {
    const v = spec.settings[k];
    if (v === undefined) return d.time(`smtpd_policy_service_${k}`) * 1000;
    const r = parseTime(v, 's');
    if (!r.ok || r.value <= 0) throw new Error(`check_policy_service ${spec.endpoint}: bad ${k} value "${v}": expected ${r.ok ? 'a positive time' : r.expected}`);
    return r.value * 1000;
  };
  const int = (k: string, min: number): number => {
    const v = spec.settings[k];
    if (v === undefined) return d.int(`smtpd_policy_service_${k}`);
    const r = parseInt10(v);
    if (!r.ok || r.value < min) throw new Error(`check_policy_service ${spec.endpoint}: bad ${k} value "${v}": expected an integer >= ${min}`);
    return r.value;
  };
  return {
    endpoint: spec.endpoint,
    timeoutMs: time('timeout'),
    maxIdleMs: time('max_idle'),
    maxTtlMs: time('max_ttl'),
    retryDelayMs: time('retry_delay'),
    tryLimit: int('try_limit', 1),
    requestLimit: int('request_limit', 0),
    defaultAction: spec.settings.default_action ?? d.str('smtpd_policy_service_default_action'),
    policyContext: spec.settings.policy_context ?? d.str('smtpd_policy_service_policy_context'),
  };
}
