// The DNS list restrictions (reject_rbl_client, reject_rhsbl_*, permit_dnswl_client, ...), as
// smtpd_check.c has them: the list domain with an optional `=filter` is parsed at load; a
// listing answers with rbl_reply_maps or default_rbl_reply ($rbl_code, $rbl_domain, ...), a list
// we cannot reach blocks nobody, and a DNS whitelist never permits past reject_unauth_destination.
// Trusts the dns module to keep "listed", "not listed" and "temporary failure" apart.

import { parseRblFilter, type RblFilter, type RblResult } from '../../dns/index.js';
import { domainOf } from '../../mail/index.js';
import { CLASS, DUNNO, PERMIT, reject, makeReply, splitDsn, type Decision } from './decision.js';
import { namaddr, type Ctx } from './context.js';
import { isAuthDestination } from './mxbackup.js';
import type { RestrictionDef } from './restrictions.js';

function splitList(arg: string): { domain: string; filter?: RblFilter } {
  const eq = arg.indexOf('=');
  if (eq < 0) return { domain: arg.toLowerCase() };
  return { domain: arg.slice(0, eq).toLowerCase(), filter: parseRblFilter(arg.slice(eq + 1)) };
}

async function rblReply(ctx: Ctx, domain: string, what: string, replyClass: string, res: Extract<RblResult, { status: 'listed' }>): Promise<Decision> {
  const { env, s } = ctx;
  const template = (env.rblReplyMaps ? await env.rblReplyMaps.get(domain) : undefined) ?? env.defaultRblReply;
  const text = env.config.expandText(template, {
    rbl_code: String(env.codes.maps_rbl_reject_code),
    rbl_domain: domain,
    rbl_reason: res.texts.join(' '),
    rbl_class: replyClass,
    rbl_what: what,
    rbl_txt: res.texts.join(' '),
    client_address: s.clientAddress,
    client_name: s.clientName,
    reverse_client_name: s.reverseClientName,
    helo_name: s.helo ?? '',
    sender: s.sender ?? '',
    recipient: s.recipient ?? '',
    client: namaddr(s),
  });
  const m = /^([45]\d\d)\s+(.*)$/s.exec(text.trim());
  if (!m) {
    env.log.warning(`${domain}: RBL reply template does not start with a 4xx or 5xx code: "${text}"`);
    return reject(makeReply(451, '4.3.5', 'Server configuration error'));
  }
  const code = Number(m[1]);
  const d = splitDsn(code >= 500 ? '5.7.1' : '4.7.1', m[2]);
  return reject(makeReply(code, d.dsn, d.text || 'Service unavailable'));
}

export function rblCheck(kind: 'client' | 'rhsbl_client' | 'rhsbl_reverse_client' | 'rhsbl_sender' | 'rhsbl_helo' | 'rhsbl_recipient', permit = false): RestrictionDef {
  return {
    arg: 'dnsbl',
    permits: permit,
    build(arg, env) {
      const { domain, filter } = splitList(arg!);
      if (!domain) throw new Error('missing DNS list domain');
      return async (ctx) => {
        const { s } = ctx;
        let what: string | undefined;
        let replyClass: string = CLASS.client;
        switch (kind) {
          case 'client': what = s.clientAddress; break;
          case 'rhsbl_client': what = s.clientName !== 'unknown' ? s.clientName : undefined; break;
          case 'rhsbl_reverse_client': what = s.reverseClientName !== 'unknown' ? s.reverseClientName : undefined; break;
          case 'rhsbl_sender': what = s.sender ? domainOf(s.sender) || undefined : undefined; replyClass = CLASS.sender; break;
          case 'rhsbl_helo': what = s.helo && !s.helo.startsWith('[') ? s.helo.toLowerCase() : undefined; replyClass = CLASS.helo; break;
          case 'rhsbl_recipient': what = s.recipient ? domainOf(s.recipient) || undefined : undefined; replyClass = CLASS.recipient; break;
        }
        if (!what) return DUNNO;
        let res: RblResult;
        try {
          res = kind === 'client' ? await env.dns.rblLookup(domain, what, filter) : await env.dns.rhsblLookup(domain, what, filter);
        } catch (err) {
          env.log.warning(`${domain}: DNS list lookup of ${what} failed: ${(err as Error).message}`);
          return DUNNO;
        }
        if (res.status === 'listError') {
          env.log.warning(res.error);
          return DUNNO;
        }
        if (res.status === 'tempFail') {
          // A DNS list we cannot reach blocks nobody (Postfix: no reply, no rejection).
          env.log.warning(`${domain}: DNS list lookup of ${res.query} failed: ${res.error.message}`);
          return DUNNO;
        }
        if (res.status !== 'listed') return DUNNO;
        if (permit) {
          // Never where it would bypass reject_unauth_destination (smtpd_acl_permit()).
          if (s.stage === 'rcpt' && (ctx.list === 'smtpd_relay_restrictions' || ctx.list === 'smtpd_recipient_restrictions') && s.recipient !== undefined && !(await isAuthDestination(env, s.recipient))) {
            return DUNNO;
          }
          return PERMIT;
        }
        return rblReply(ctx, domain, what, replyClass, res);
      };
    },
  };
}
