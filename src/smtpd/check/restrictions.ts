// The restriction registry: one small function per restriction name, registered as data
// (Postfix's generic_checks() dispatch). Each entry says whether it takes an argument (a table,
// a DNS list, a policy service) and what the linter needs to know about it; `build` runs once
// at load, so a table that cannot be opened or a bad DNSBL filter fails there.
// Reply texts and codes follow smtpd_check.c.

import { isIP } from 'node:net';
import { domainOf, formatReply, validHostname, type Reply } from '../../mail/index.js';
import { PolicyClient, parsePolicySpec, policyAttributes, policyOptions } from '../../policy/index.js';
import { accessAction, addressKeys, addressLookupKeys, domainKeys, searchKeys } from './access.js';
import { CLASS, classReply, DUNNO, PERMIT, reject, deferIfPermit, deferIfReject, makeReply, type Decision } from './decision.js';
import { namaddr, type Env, type RestrictionFn } from './context.js';
import { permitMxBackup, isAuthDestination } from './mxbackup.js';
import { rblCheck } from './rbl.js';

export interface RestrictionDef {
  /** What the single argument is, when there is one. */
  arg?: 'table' | 'dnsbl' | 'policy';
  /** Permits unconditionally (`permit`): nothing after it is ever reached. */
  alwaysPermits?: boolean;
  /** Can permit (for the linter's reachability analysis). */
  permits?: boolean;
  /** One of the restrictions postconf(5) requires somewhere so that Postfix receives mail. */
  countsAsReject?: boolean;
  build(arg: string | undefined, env: Env): RestrictionFn;
}

// ---- helpers -----------------------------------------------------------------------------------

/** reject_tempfail_action & co: how a temporary problem is reported. */
function tempAction(action: string, r: ReturnType<typeof makeReply>): Decision {
  switch (action) {
    case 'defer': return reject(r);
    case 'defer_if_reject': return deferIfReject(r);
    case 'dunno': return DUNNO;
    default: return deferIfPermit(r);
  }
}

/** valid_hostaddr() for `[1.2.3.4]` / `[IPv6:...]` literals. */
function validLiteral(name: string): boolean {
  const m = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(name);
  return !!m && isIP(m[1]) !== 0;
}

// ---- access tables ---------------------------------------------------------------------------

function accessCheck(which: 'client' | 'reverse' | 'helo' | 'sender' | 'recipient'): RestrictionDef {
  return {
    arg: 'table',
    permits: true,
    build(ref, env) {
      const table = env.openTable(ref!);
      return async (ctx) => {
        const { s } = ctx;
        let keys: Array<{ key: string; partial: boolean }>;
        let name: string;
        let replyClass: string;
        if (which === 'client' || which === 'reverse') {
          const host = which === 'client' ? s.clientName : s.reverseClientName;
          keys = [];
          if (host && host !== 'unknown') domainKeys(host.toLowerCase(), env.accessParentMatch).forEach((k, i) => keys.push({ key: k, partial: i > 0 }));
          addressKeys(s.clientAddress).forEach((k, i) => keys.push({ key: k, partial: i > 0 }));
          name = namaddr(s);
          replyClass = CLASS.client;
        } else if (which === 'helo') {
          if (!s.helo) return DUNNO;
          keys = domainKeys(s.helo.toLowerCase().replace(/\.$/, ''), env.accessParentMatch).map((k, i) => ({ key: k, partial: i > 0 }));
          name = s.helo;
          replyClass = CLASS.helo;
        } else {
          const addr = which === 'sender' ? s.sender : s.recipient;
          if (addr === undefined) return DUNNO;
          name = addr;
          replyClass = which === 'sender' ? CLASS.sender : CLASS.recipient;
          if (addr === '') {
            keys = env.nullAccessKey ? [{ key: env.nullAccessKey, partial: false }] : [];
          } else {
            keys = addressLookupKeys(addr, env.recipientDelimiter, env.accessParentMatch);
          }
        }
        const hit = await searchKeys(table, keys);
        if (!hit) return DUNNO;
        return accessAction(ctx, hit.value, { name, replyClass, table: table.ref });
      };
    },
  };
}

// ---- verification ---------------------------------------------------------------------------

function unverified(kind: 'recipient' | 'sender'): RestrictionDef {
  return {
    build(_arg, env) {
      return async (ctx) => {
        const { s } = ctx;
        const addr = kind === 'recipient' ? s.recipient : s.sender;
        if (!addr) return DUNNO; // null sender, or no address yet
        const replyClass = kind === 'recipient' ? CLASS.recipient : CLASS.sender;
        const dsn = kind === 'recipient' ? '4.1.1' : '4.1.7';
        if (!env.verifier) {
          env.log.warning(`reject_unverified_${kind}: no address verification service`);
          return deferIfPermit(classReply(450, dsn, addr, replyClass, 'address verification problem'));
        }
        let res;
        try {
          res = await env.verifier.check(addr, kind);
        } catch (err) {
          env.log.warning(`problem talking to the verify service: ${(err as Error).message}`);
          return deferIfPermit(classReply(450, dsn, addr, replyClass, 'address verification problem'));
        }
        // The cache itself failed (Redis down, unreadable store): Postfix's VRFY_STAT_FAIL.
        if (res.problem) return deferIfPermit(classReply(450, dsn, addr, replyClass, 'address verification problem'));
        const c = env.codes;
        const rejectCode = kind === 'recipient' ? c.unverified_recipient_reject_code : c.unverified_sender_reject_code;
        const deferCode = kind === 'recipient' ? c.unverified_recipient_defer_code : c.unverified_sender_defer_code;
        let code: number;
        let text = res.text;
        switch (res.status) {
          case 'deliverable': return DUNNO;
          case 'undeliverable': code = rejectCode; break;
          case 'pending': code = deferCode; text = 'Address verification in progress'; break;
          default: code = deferCode; break;
        }
        if (code < 400) return DUNNO; // "you can specify 250 in order to accept the address anyway"
        const reason = kind === 'recipient' ? env.unverifiedReasons.recipient : env.unverifiedReasons.sender;
        if (reason) text = reason;
        text = text.slice(0, 250);
        if (code >= 500) return reject(classReply(code, dsn, addr, replyClass, `undeliverable address: ${text}`));
        const action = kind === 'recipient' ? env.tempfailActions.recipient : env.tempfailActions.sender;
        return tempAction(action, classReply(code, dsn, addr, replyClass, `unverified address: ${text}`));
      };
    },
  };
}

// ---- unknown domains -------------------------------------------------------------------------

function unknownDomain(kind: 'sender' | 'recipient'): RestrictionDef {
  return {
    build(_arg, env) {
      return async (ctx) => {
        const addr = kind === 'sender' ? ctx.s.sender : ctx.s.recipient;
        if (!addr) return DUNNO;
        const r = await env.resolve(addr);
        if (r.class === 'local' || !r.domain || r.domain.startsWith('[')) return DUNNO;
        const replyClass = kind === 'sender' ? CLASS.sender : CLASS.recipient;
        const dsn = kind === 'sender' ? '4.1.8' : '4.1.2';
        const code = env.codes.unknown_address_reject_code;
        const mx = await env.dns.mx(r.domain);
        if (mx.status === 'ok') return DUNNO;
        if (mx.status === 'nullMx') {
          return reject(classReply(kind === 'sender' ? 550 : 556, kind === 'sender' ? '5.7.27' : '5.1.10', addr, replyClass, `Domain ${r.domain} does not accept mail (nullMX)`));
        }
        if (mx.status === 'tempFail') {
          return tempAction(env.tempfailActions.unknownAddress, classReply(450, dsn, addr, replyClass, 'Domain not found'));
        }
        const [a, aaaa] = await Promise.all([env.dns.a(r.domain), env.dns.aaaa(r.domain)]);
        if (a.status === 'ok' || aaaa.status === 'ok') return DUNNO;
        if (a.status === 'tempFail' || aaaa.status === 'tempFail') {
          return tempAction(env.tempfailActions.unknownAddress, classReply(450, dsn, addr, replyClass, 'Domain not found'));
        }
        return reject(classReply(code, code >= 500 ? '5' + dsn.slice(1) : dsn, addr, replyClass, 'Domain not found'));
      };
    },
  };
}

function nonFqdn(kind: 'sender' | 'recipient'): RestrictionDef {
  return {
    build(_arg, env) {
      return (ctx) => {
        const addr = kind === 'sender' ? ctx.s.sender : ctx.s.recipient;
        if (!addr) return DUNNO;
        const dom = domainOf(addr);
        if (dom && (dom.startsWith('[') ? validLiteral(dom) : validHostname(dom) && dom.includes('.'))) return DUNNO;
        const replyClass = kind === 'sender' ? CLASS.sender : CLASS.recipient;
        return reject(classReply(env.codes.non_fqdn_reject_code, '5.5.2', addr, replyClass, 'need fully-qualified address'));
      };
    },
  };
}

// ---- the registry ----------------------------------------------------------------------------

const simple = (fn: RestrictionFn, extra: Partial<RestrictionDef> = {}): RestrictionDef => ({ ...extra, build: () => fn });

const nonFqdnHelo: RestrictionDef = {
  build: (_a, env) => (ctx) => {
    const h = ctx.s.helo;
    if (!h) return DUNNO;
    if (h.startsWith('[') ? validLiteral(h) : validHostname(h) && h.replace(/\.$/, '').includes('.')) return DUNNO;
    return reject(classReply(env.codes.non_fqdn_reject_code, '5.5.2', h, CLASS.helo, 'need fully-qualified hostname'));
  },
};

const invalidHelo: RestrictionDef = {
  build: (_a, env) => (ctx) => {
    const h = ctx.s.helo;
    if (!h) return DUNNO;
    if (h.startsWith('[') ? validLiteral(h) : validHostname(h)) return DUNNO;
    return reject(classReply(env.codes.invalid_hostname_reject_code, '5.5.2', h, CLASS.helo, 'Invalid name'));
  },
};

function unauthDestination(defer: boolean): RestrictionDef {
  return {
    countsAsReject: true,
    build: (_a, env) => async (ctx) => {
      const rcpt = ctx.s.recipient;
      if (rcpt === undefined || ctx.s.stage !== 'rcpt') return DUNNO;
      if (await isAuthDestination(env, rcpt)) return DUNNO;
      // Postfix: defer_unauth_destination answers relay_domains_reject_code - 100 (454 by default).
      const code = defer ? env.codes.relay_domains_reject_code - 100 : env.codes.relay_domains_reject_code;
      return reject(makeReply(code, defer ? '4.7.1' : '5.7.1', `<${rcpt}>: Relay access denied`));
    },
  };
}

const unlistedRecipient: RestrictionDef = {
  build: (_a, env) => async (ctx) => {
    const rcpt = ctx.s.recipient;
    const refusal = rcpt ? await unlistedRelayRecipient(env, rcpt) : undefined;
    return refusal ? reject(refusal) : DUNNO;
  },
};

/**
 * relay_recipient_maps: the refusal for a relay-domain recipient the maps do not list, or
 * undefined (listed, not a relay-domain address, or no maps). Used by reject_unlisted_recipient
 * and by smtpd_reject_unlisted_recipient after the restriction lists.
 */
export async function unlistedRelayRecipient(env: Env, rcpt: string): Promise<Reply | undefined> {
  {
    if (!env.relayRecipientMaps) return undefined;
    const r = await env.resolve(rcpt);
    if (r.class !== 'relay') return undefined;
    const keys = addressLookupKeys(r.address.toLowerCase(), env.recipientDelimiter, false).filter((k) => k.key !== r.domain || true);
    // relay_recipient_maps: user@domain, then @domain (Postfix's recipient map lookup order).
    const tries = [keys[0].key, ...(keys.find((k, i) => i === 1 && k.key.includes('@')) ? [keys[1].key] : []), `@${r.domain}`];
    for (const k of tries) if ((await env.relayRecipientMaps.get(k)) !== undefined) return undefined;
    return classReply(env.codes.unknown_relay_recipient_reject_code, '5.1.1', rcpt, CLASS.recipient, 'User unknown in relay recipient table');
  }
}

const unknownClient = (reverse: boolean): RestrictionDef => ({
  build: (_a, env) => (ctx) => {
    const name = reverse ? ctx.s.reverseClientName : ctx.s.clientName;
    if (name && name !== 'unknown') return DUNNO;
    const text = `Client host rejected: cannot find your ${reverse ? 'reverse ' : ''}hostname, [${ctx.s.clientAddress}]`;
    if (ctx.s.clientNameTempFail) return deferIfPermit(makeReply(450, '4.7.25', text));
    return reject(makeReply(env.codes.unknown_client_reject_code, '4.7.25', text));
  },
});

const policyService: RestrictionDef = {
  arg: 'policy',
  permits: true,
  build(arg, env) {
    const spec = parsePolicySpec(arg!);
    const key = arg!.replace(/\s+/g, ' ');
    let client = env.policies.get(key);
    if (!client) {
      client = new PolicyClient({ ...policyOptions(spec, env.config), warn: (t) => env.log.warning(t) });
      env.policies.set(key, client);
    }
    const c = client;
    return async (ctx) => {
      const answer = await c.query(policyAttributes(ctx.s));
      return accessAction(ctx, answer.action, { name: ctx.replyName, replyClass: ctx.replyClass, table: `policy query ${spec.endpoint}` });
    };
  },
};

export const RESTRICTIONS: Readonly<Record<string, RestrictionDef>> = {
  permit: simple(() => PERMIT, { alwaysPermits: true, permits: true }),
  reject: { countsAsReject: true, build: (_a, env) => (ctx) => reject(classReply(env.codes.reject_code, '5.7.1', ctx.replyName, ctx.replyClass, 'Access denied')) },
  defer: { countsAsReject: true, build: (_a, env) => (ctx) => reject(classReply(env.codes.defer_code, '4.7.1', ctx.replyName, ctx.replyClass, 'Access denied')) },
  defer_if_permit: { countsAsReject: true, build: (_a, env) => (ctx) => deferIfPermit(classReply(env.codes.defer_code, '4.7.1', ctx.replyName, ctx.replyClass, 'defer_if_permit requested')) },
  defer_if_reject: { build: (_a, env) => (ctx) => deferIfReject(classReply(env.codes.defer_code, '4.7.1', ctx.replyName, ctx.replyClass, 'defer_if_reject requested')) },
  warn_if_reject: simple((ctx) => { ctx.st.warnNext = true; return DUNNO; }),

  check_client_access: accessCheck('client'),
  check_reverse_client_hostname_access: accessCheck('reverse'),
  check_helo_access: accessCheck('helo'),
  check_sender_access: accessCheck('sender'),
  check_recipient_access: accessCheck('recipient'),

  permit_mynetworks: { permits: true, build: (_a, env) => async (ctx) => ((await env.mynetworks.match(undefined, ctx.s.clientAddress)) ? PERMIT : DUNNO) },
  permit_sasl_authenticated: { permits: true, build: () => (ctx) => (ctx.s.saslUsername ? PERMIT : DUNNO) },

  reject_rbl_client: rblCheck('client'),
  reject_rhsbl_client: rblCheck('rhsbl_client'),
  reject_rhsbl_reverse_client: rblCheck('rhsbl_reverse_client'),
  reject_rhsbl_sender: rblCheck('rhsbl_sender'),
  reject_rhsbl_helo: rblCheck('rhsbl_helo'),
  reject_rhsbl_recipient: rblCheck('rhsbl_recipient'),
  permit_dnswl_client: rblCheck('client', true),
  permit_rhswl_client: rblCheck('rhsbl_client', true),

  check_policy_service: policyService,

  reject_unverified_recipient: unverified('recipient'),
  reject_unverified_sender: unverified('sender'),

  permit_mx_backup: { permits: true, build: (_a, env) => (ctx) => (ctx.s.recipient === undefined ? DUNNO : permitMxBackup(ctx, ctx.s.recipient)) },
  reject_unauth_destination: unauthDestination(false),
  defer_unauth_destination: unauthDestination(true),
  permit_auth_destination: { permits: true, build: (_a, env) => async (ctx) => (ctx.s.recipient !== undefined && ctx.s.stage === 'rcpt' && (await isAuthDestination(env, ctx.s.recipient)) ? PERMIT : DUNNO) },
  reject_unlisted_recipient: unlistedRecipient,
  reject_unknown_recipient_domain: unknownDomain('recipient'),
  reject_unknown_sender_domain: unknownDomain('sender'),
  reject_non_fqdn_sender: nonFqdn('sender'),
  reject_non_fqdn_recipient: nonFqdn('recipient'),
  reject_non_fqdn_helo_hostname: nonFqdnHelo,
  reject_non_fqdn_hostname: nonFqdnHelo,
  reject_invalid_helo_hostname: invalidHelo,
  reject_invalid_hostname: invalidHelo,
  reject_unknown_client_hostname: unknownClient(false),
  reject_unknown_client: unknownClient(false),
  reject_unknown_reverse_client_hostname: unknownClient(true),
  reject_unauth_pipelining: {
    build: () => (ctx) => (ctx.s.pipelined ? reject(classReply(503, '5.5.0', ctx.replyName, ctx.replyClass, 'Improper use of SMTP command pipelining')) : DUNNO),
  },
};

void formatReply;
