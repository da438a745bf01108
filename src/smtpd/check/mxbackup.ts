// permit_mx_backup exactly as smtpd_check.c's permit_mx_backup(), i_am_mx(), has_my_addr()
// and all_auth_mx_addr() do it (POSTFIX-BACKUP-MX-NOTES §1.1), and the "authorized
// destination" test of permit_auth_destination / reject_unauth_destination.
// Rules, in order: routed addresses are never permitted (unless allow_untrusted_routing);
// our own and relay_domains destinations are; then the MX records decide: we must be listed,
// not among the most preferred, and (when permit_mx_backup_networks is set) every address of
// every most-preferred MX host must lie in those networks. A temporary DNS failure is a
// DEFER_IF_REJECT 450 4.4.4 — it turns a later 5xx into a 450, never a relay, never a 5xx.

import { classReply, CLASS, DUNNO, PERMIT, deferIfReject, type Decision } from './decision.js';
import type { Ctx, Env } from './context.js';
import type { MxRecord } from '../../dns/index.js';
import { parseIp } from '../../mail/index.js';

/** permit_auth_destination's test: final (local) or relay_domains, and not routed. */
export async function isAuthDestination(env: Env, recipient: string): Promise<boolean> {
  const r = await env.resolve(recipient);
  if (!env.allowUntrustedRouting && r.routed) return false;
  if (r.class === 'local') return true;
  return r.class === 'relay' && !r.routed;
}

/** Our addresses: the listening addresses the master passes, plus proxy/explicit interfaces. */
function ownAddresses(env: Env): Set<string> {
  const out = new Set<string>();
  for (const a of [...env.myAddresses(), ...env.extraAddresses]) {
    const p = parseIp(a);
    if (p) out.add(p.toString());
  }
  return out;
}

function dnsErrorText(res: { status: string; error?: { message: string } }): string {
  switch (res.status) {
    case 'notFound': return 'Host not found';
    case 'noData': return 'No address associated with hostname';
    default: return res.error?.message ?? 'Host not found, try again';
  }
}

/** All addresses of a host (A and AAAA), or the failure text. */
async function hostAddresses(env: Env, host: string): Promise<{ ok: true; addrs: string[] } | { ok: false; temp: boolean; why: string }> {
  const [a, aaaa] = await Promise.all([env.dns.a(host), env.dns.aaaa(host)]);
  const addrs = [...(a.status === 'ok' ? a.records : []), ...(aaaa.status === 'ok' ? aaaa.records : [])];
  if (addrs.length) return { ok: true, addrs };
  const failed = a.status === 'tempFail' ? a : aaaa.status === 'tempFail' ? aaaa : a;
  return { ok: false, temp: failed.status === 'tempFail', why: dnsErrorText(failed as { status: string; error?: { message: string } }) };
}

/** i_am_mx(): one of these MX hosts is us — by name (mydestination) first, then by address. */
async function iAmMx(ctx: Ctx, rcpt: string, hosts: MxRecord[], mine: Set<string>): Promise<boolean> {
  const { env } = ctx;
  for (const h of hosts) if (await env.mydestination.matchDomain(h.exchange)) return true;
  for (const h of hosts) {
    const res = await hostAddresses(env, h.exchange);
    if (!res.ok) {
      ctx.st.deferIfReject ??= classReply(450, '4.4.4', rcpt, CLASS.recipient, `Unable to look up mail exchanger host ${h.exchange}: ${res.why}`);
      continue;
    }
    if (res.addrs.some((a) => mine.has(parseIp(a)?.toString() ?? a))) return true;
  }
  return false;
}

/** all_auth_mx_addr(): every address of this primary lies in permit_mx_backup_networks. */
async function allAuthMxAddr(ctx: Ctx, rcpt: string, host: string): Promise<boolean> {
  const { env } = ctx;
  const res = await hostAddresses(env, host);
  if (!res.ok) {
    ctx.st.deferIfReject ??= classReply(450, '4.4.4', rcpt, CLASS.recipient, `Unable to look up host ${host} as mail exchanger: ${res.why}`);
    return false;
  }
  for (const addr of res.addrs) {
    if (!(await env.mxBackupNetworks.match(host, addr))) return false;
  }
  return true;
}

export async function permitMxBackup(ctx: Ctx, recipient: string): Promise<Decision> {
  const { env } = ctx;
  const r = await env.resolve(recipient);
  if (!r.domain) return PERMIT; // an address without domain is ours
  if (!env.allowUntrustedRouting && r.routed) return DUNNO;
  if (r.class === 'local' || r.class === 'relay') return PERMIT;
  if (r.domain.startsWith('[')) return DUNNO;
  const mx = await env.dns.mx(r.domain);
  if (mx.status === 'tempFail') {
    ctx.st.deferIfReject ??= classReply(450, '4.4.4', recipient, CLASS.recipient, `Unable to look up mail exchanger information: ${mx.error.message}`);
    return DUNNO;
  }
  if (mx.status !== 'ok' || mx.records.length === 0) return DUNNO;
  const best = Math.min(...mx.records.map((m) => m.preference));
  const primaries = mx.records.filter((m) => m.preference === best);
  const rest = mx.records.filter((m) => m.preference !== best);
  const mine = ownAddresses(env);
  if (await iAmMx(ctx, recipient, primaries, mine)) return DUNNO; // we are a primary
  if (rest.length === 0 || !(await iAmMx(ctx, recipient, rest, mine))) return DUNNO; // not listed
  if (!env.mxBackupNetworks.empty) {
    for (const p of primaries) if (!(await allAuthMxAddr(ctx, recipient, p.exchange))) return DUNNO;
  }
  return PERMIT;
}

void deferIfReject;
