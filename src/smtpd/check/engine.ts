// The restriction engine: smtpd_*_restrictions parsed once at load (tables and policy clients
// opened then), evaluated per stage with Postfix's order and semantics:
//   - a list runs left to right until permit, reject (4xx = defer) or its end (= permit);
//   - defer_if_permit / defer_if_reject are remembered and evaluation goes on; a later 5xx
//     becomes the saved defer_if_reject reply, a final permit becomes the saved defer_if_permit;
//   - warn_if_reject turns the next restriction's reject into a logged reject_warning;
//   - smtpd_delay_reject = yes runs the client, helo and sender lists at RCPT (and ETRN);
//   - at RCPT smtpd_relay_restrictions runs before smtpd_recipient_restrictions: both must pass.
// The engine never touches the socket and never logs NOQUEUE lines; the protocol side does.

import type { Config } from '../../config/index.js';
import { TableList, openTable as openTableReal, type LookupTable } from '../../tables/index.js';
import type { Logger } from '../../log/index.js';
import type { Verifier } from '../../verify/types.js';
import { type Reply } from '../../mail/index.js';
import { CLASS, DUNNO, PERMIT, classReply, makeReply, type Decision } from './decision.js';
import { newState, namaddr, type CheckDns, type CompiledList, type Ctx, type Env, type EvalState } from './context.js';
import { MatchList } from './matchlist.js';
import { resolveAddress } from './resolve.js';
import { RESTRICTIONS, unlistedRelayRecipient } from './restrictions.js';
import type { RestrictionEngine, SessionInfo, Verdict } from './types.js';

export const RESTRICTION_LISTS = [
  'smtpd_client_restrictions', 'smtpd_helo_restrictions', 'smtpd_sender_restrictions', 'smtpd_relay_restrictions',
  'smtpd_recipient_restrictions', 'smtpd_data_restrictions', 'smtpd_end_of_data_restrictions', 'smtpd_etrn_restrictions',
] as const;
export type ListName = (typeof RESTRICTION_LISTS)[number];

const MAX_DEPTH = 100;

export interface EngineOptions {
  dns: CheckDns;
  verifier?: Verifier;
  /** The addresses this host listens on (the master passes the bound addresses). */
  myAddresses: () => string[];
  log: Logger;
  now?: () => number;
}

/** One parsed element: name and argument, before building. */
export interface ParsedElement {
  name: string;
  arg?: string;
}

/**
 * Split a list into restrictions and their arguments; throws naming the bad element.
 * `classes` are the names in smtpd_restriction_classes (valid as restrictions).
 */
export function parseElements(elements: readonly string[], classes: ReadonlySet<string>): ParsedElement[] {
  const out: ParsedElement[] = [];
  for (let i = 0; i < elements.length; i++) {
    const name = elements[i];
    const def = RESTRICTIONS[name.toLowerCase()];
    if (!def) {
      if (classes.has(name)) {
        out.push({ name });
        continue;
      }
      if (/^[a-z]+:/.test(name) && i > 0) throw new Error(`unexpected table or address "${name}" after ${elements[i - 1]}`);
      throw new Error(`unknown smtpd restriction: "${name}"`);
    }
    if (def.arg) {
      const arg = elements[i + 1];
      if (arg === undefined || (RESTRICTIONS[arg.toLowerCase()] && def.arg !== 'dnsbl')) {
        throw new Error(`restriction ${name} needs ${def.arg === 'table' ? 'a type:table argument' : def.arg === 'dnsbl' ? 'a DNS list domain' : 'a policy service address'}`);
      }
      if (def.arg === 'table' && !/^[a-z0-9_]+:./i.test(arg)) throw new Error(`restriction ${name}: "${arg}" is not a type:table reference`);
      i++;
      out.push({ name: name.toLowerCase(), arg });
      continue;
    }
    out.push({ name: name.toLowerCase() });
  }
  return out;
}

/** Build the load-time environment from the configuration. */
function buildEnv(config: Config, opts: EngineOptions): Env {
  const parentParams = new Set(config.list('parent_domain_matches_subdomains'));
  const tables = new Map<string, LookupTable>();
  const openTable = (ref: string): LookupTable => {
    let t = tables.get(ref);
    if (!t) {
      t = openTableReal(ref, { baseDir: config.dir, warn: (m) => opts.log.warning(m) });
      tables.set(ref, t);
    }
    return t;
  };
  const ml = (param: string): MatchList =>
    MatchList.compile(config.list(param), { param, parentMatch: parentParams.has(param), openTable, baseDir: config.dir });
  const code = (n: string): number => config.code(n);
  const inet = config.list('inet_interfaces').filter((a) => a !== 'all' && a !== 'loopback-only');
  const classNames = new Set(config.list('smtpd_restriction_classes'));
  const resolveCache = new Map<string, Promise<import('./resolve.js').Resolved>>();
  const env: Env = {
    config,
    dns: opts.dns,
    verifier: opts.verifier,
    myAddresses: opts.myAddresses,
    log: opts.log,
    now: opts.now ?? Date.now,
    codes: {
      access_map_reject_code: code('access_map_reject_code'),
      access_map_defer_code: code('access_map_defer_code'),
      reject_code: code('reject_code'),
      defer_code: code('defer_code'),
      relay_domains_reject_code: code('relay_domains_reject_code'),
      maps_rbl_reject_code: code('maps_rbl_reject_code'),
      unknown_address_reject_code: code('unknown_address_reject_code'),
      unknown_client_reject_code: code('unknown_client_reject_code'),
      invalid_hostname_reject_code: code('invalid_hostname_reject_code'),
      non_fqdn_reject_code: code('non_fqdn_reject_code'),
      unverified_recipient_reject_code: code('unverified_recipient_reject_code'),
      unverified_recipient_defer_code: code('unverified_recipient_defer_code'),
      unverified_sender_reject_code: code('unverified_sender_reject_code'),
      unverified_sender_defer_code: code('unverified_sender_defer_code'),
      unknown_relay_recipient_reject_code: code('unknown_relay_recipient_reject_code'),
    },
    softBounce: config.raw('soft_bounce') !== undefined && /^(yes|true)$/i.test(config.str('soft_bounce').trim()),
    delayReject: config.bool('smtpd_delay_reject'),
    heloRequired: config.bool('smtpd_helo_required'),
    rejectUnlistedLocal: config.bool('smtpd_reject_unlisted_recipient') ? config.code('unknown_local_recipient_reject_code') : false,
    allowUntrustedRouting: config.bool('allow_untrusted_routing'),
    accessParentMatch: parentParams.has('smtpd_access_maps'),
    recipientDelimiter: config.str('recipient_delimiter'),
    nullAccessKey: config.str('smtpd_null_access_lookup_key'),
    mynetworks: ml('mynetworks'),
    mxBackupNetworks: ml('permit_mx_backup_networks'),
    mydestination: ml('mydestination'),
    relayDomains: ml('relay_domains'),
    extraAddresses: [...config.list('proxy_interfaces'), ...inet],
    relayRecipientMaps: config.list('relay_recipient_maps').length ? new TableList(config.list('relay_recipient_maps').map(openTable)) : undefined,
    rblReplyMaps: config.list('rbl_reply_maps').length ? new TableList(config.list('rbl_reply_maps').map(openTable)) : undefined,
    defaultRblReply: config.raw('default_rbl_reply') ?? '',
    tempfailActions: {
      recipient: config.str('unverified_recipient_tempfail_action').trim(),
      sender: config.str('unverified_sender_tempfail_action').trim(),
      unknownAddress: config.str('unknown_address_tempfail_action').trim(),
    },
    unverifiedReasons: { recipient: config.str('unverified_recipient_reject_reason'), sender: config.str('unverified_sender_reject_reason') },
    tables,
    policies: new Map(),
    classes: new Map(),
    actionLists: new Map(),
    resolve: (address) => {
      // Address classes depend only on the configuration: memoized (bounded).
      const hit = resolveCache.get(address);
      if (hit) return hit;
      if (resolveCache.size > 10_000) resolveCache.clear();
      const p = resolveAddress(address, {
      allowPercentHack: config.bool('allow_percent_hack'),
      swapBangpath: config.bool('swap_bangpath'),
      resolveDequoted: config.raw('resolve_dequoted_address') === undefined ? true : /^(yes|true)$/i.test(config.str('resolve_dequoted_address').trim()),
      isLocal: (d) => isLocalDomain(env, d),
      isRelay: (d) => env.relayDomains.matchDomain(d),
      myorigin: config.str('myorigin'),
      });
      resolveCache.set(address, p);
      p.catch(() => resolveCache.delete(address));
      return p;
    },
    compile: (elements, where) => compileList(env, elements, where, classNames),
    openTable,
  };
  return env;
}

/** resolve_local(): mydestination, or a literal of one of our addresses. */
async function isLocalDomain(env: Env, domain: string): Promise<boolean> {
  const lit = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(domain);
  if (lit) return [...env.myAddresses(), ...env.extraAddresses].some((a) => a.replace(/^\[|\]$/g, '').toLowerCase() === lit[1].toLowerCase());
  return env.mydestination.matchDomain(domain);
}

function compileList(env: Env, elements: string[], where: string, classes: ReadonlySet<string>): CompiledList {
  const parsed = parseElements(elements, classes);
  return parsed.map((p) => {
    if (!RESTRICTIONS[p.name]) {
      // A restriction class: resolved at run time (classes may refer to each other).
      const cls = p.name;
      return {
        name: cls,
        fn: (ctx: Ctx) => {
          const list = env.classes.get(cls);
          return list ? ctx.run(list) : DUNNO;
        },
      };
    }
    try {
      return { name: p.name, arg: p.arg, fn: RESTRICTIONS[p.name].build(p.arg, env) };
    } catch (err) {
      throw new Error(`${where}: ${p.name}${p.arg ? ' ' + p.arg : ''}: ${(err as Error).message}`);
    }
  });
}

type Outcome = { kind: 'dunno' } | { kind: 'permit' } | { kind: 'reject'; reply: Reply };

class Engine implements RestrictionEngine {
  private readonly lists: Record<ListName, CompiledList>;

  constructor(private readonly env: Env) {
    const classes = env.config.list('smtpd_restriction_classes');
    for (const c of classes) env.classes.set(c, env.compile(env.config.list(c), c));
    this.lists = Object.fromEntries(RESTRICTION_LISTS.map((n) => [n, env.compile(env.config.list(n), n)])) as Record<ListName, CompiledList>;
  }

  /** smtpd_check_reject(): warn_if_reject, soft_bounce, defer_if_reject substitution. */
  private finish(st: EvalState, r: Reply, warn: boolean): Reply | undefined {
    let out = makeReply(r.code, r.dsn, r.text);
    if (warn) {
      st.warnings.push(`${out.code} ${out.dsn} ${out.text}`);
      return undefined;
    }
    if (out.code >= 500 && st.deferIfReject) out = st.deferIfReject;
    if (this.env.softBounce && out.code >= 500) out = makeReply(out.code - 100, out.dsn, out.text);
    return out;
  }

  private async runList(list: CompiledList, ctx: Ctx): Promise<Outcome> {
    const { st } = ctx;
    if (++st.depth > MAX_DEPTH) {
      st.depth--;
      this.env.log.warning(`restriction class nesting too deep in ${ctx.list}`);
      return { kind: 'reject', reply: makeReply(451, '4.3.5', 'Server configuration error') };
    }
    try {
      for (const el of list) {
        const warn = st.warnNext;
        st.warnNext = false;
        let d: Decision;
        try {
          d = await el.fn(ctx);
        } catch (err) {
          // A table or service error is temporary: never a permit, never a 5xx.
          this.env.log.warning(`${ctx.list}: ${el.name}${el.arg ? ' ' + el.arg : ''}: ${(err as Error).message}`);
          d = { kind: 'reject', reply: makeReply(451, '4.3.0', `<${ctx.replyName}>: Temporary lookup failure`) };
        }
        if (el.name === 'warn_if_reject') continue;
        switch (d.kind) {
          case 'dunno':
            continue;
          case 'permit':
            return { kind: 'permit' };
          case 'defer_if_permit':
            if (warn) st.warnings.push(`${d.reply.code} ${d.reply.dsn} ${d.reply.text}`);
            else if (!st.deferIfPermit) {
              st.deferIfPermit = makeReply(d.reply.code, d.reply.dsn, d.reply.text);
              st.deferIfPermitBy = el.name;
            }
            continue;
          case 'defer_if_reject':
            if (warn) st.warnings.push(`${d.reply.code} ${d.reply.dsn} ${d.reply.text}`);
            else st.deferIfReject ??= makeReply(d.reply.code, d.reply.dsn, d.reply.text);
            continue;
          case 'reject': {
            const r = this.finish(st, d.reply, warn);
            if (r) {
              st.decidedBy ??= el.name;
              return { kind: 'reject', reply: r };
            }
            continue;
          }
        }
      }
      return { kind: 'dunno' };
    } finally {
      st.depth--;
    }
  }

  private ctx(s: SessionInfo, st: EvalState, list: ListName): Ctx {
    let replyName: string;
    let replyClass: string;
    switch (list) {
      case 'smtpd_client_restrictions': replyName = namaddr(s); replyClass = CLASS.client; break;
      case 'smtpd_helo_restrictions': replyName = s.helo ?? ''; replyClass = CLASS.helo; break;
      case 'smtpd_sender_restrictions': replyName = s.sender ?? ''; replyClass = CLASS.sender; break;
      case 'smtpd_etrn_restrictions': replyName = s.etrnDomain ?? ''; replyClass = CLASS.etrn; break;
      case 'smtpd_data_restrictions': replyName = 'DATA'; replyClass = CLASS.data; break;
      case 'smtpd_end_of_data_restrictions': replyName = 'END-OF-MESSAGE'; replyClass = CLASS.eod; break;
      default: replyName = s.recipient ?? ''; replyClass = CLASS.recipient;
    }
    const ctx: Ctx = {
      s, st, env: this.env, replyName, replyClass, list,
      run: async (nested) => {
        const o = await this.runList(nested, ctx);
        return o.kind === 'permit' ? PERMIT : o.kind === 'reject' ? { kind: 'reject', reply: o.reply } : DUNNO;
      },
    };
    return ctx;
  }

  private async list(name: ListName, s: SessionInfo, st: EvalState): Promise<Outcome> {
    const list = this.lists[name];
    if (!list.length) return { kind: 'dunno' };
    return this.runList(list, this.ctx(s, st, name));
  }

  private verdict(st: EvalState, reply?: Reply): Verdict {
    const v: Verdict = { action: reply ? 'reject' : 'accept' };
    if (reply) {
      v.reply = reply;
      v.restriction = st.decidedBy ?? 'smtpd_helo_required';
    }
    if (st.hold !== undefined) v.hold = st.hold;
    if (st.discard !== undefined) v.discard = st.discard;
    if (st.prepend.length) v.prepend = st.prepend;
    if (st.warnings.length) v.warnings = st.warnings;
    if (st.filter !== undefined) v.filter = st.filter;
    if (st.redirect !== undefined) v.redirect = st.redirect;
    if (st.bcc.length) v.bcc = st.bcc;
    if (st.info.length) v.info = st.info;
    if (reply && (reply.code === 421 || reply.code === 521)) v.disconnect = true;
    return v;
  }

  /** Evaluate lists in order; a reject ends everything; at the end a saved defer_if_permit applies. */
  private async sequence(s: SessionInfo, names: ListName[], st = newState()): Promise<Verdict> {
    for (const n of names) {
      const o = await this.list(n, s, st);
      if (o.kind === 'reject') return this.verdict(st, o.reply);
    }
    if (st.deferIfPermit) {
      st.decidedBy = st.deferIfPermitBy;
      return this.verdict(st, st.deferIfPermit);
    }
    return this.verdict(st);
  }

  /**
   * smtpd_reject_unlisted_recipient, applied after the lists as Postfix does: Backstop keeps no
   * local mailboxes, so an address of our own (mydestination, our address literals) that passed
   * the restrictions is unknown — refused now rather than accepted and bounced later (backscatter).
   */
  private async unlisted(s: SessionInfo, v: Verdict): Promise<Verdict> {
    const code = this.env.rejectUnlistedLocal;
    if (v.action !== 'accept' || code === false || !s.recipient) return v;
    const r = await this.env.resolve(s.recipient);
    if (r.class === 'relay') {
      const refusal = await unlistedRelayRecipient(this.env, s.recipient);
      return refusal ? { ...v, action: 'reject', reply: refusal } : v;
    }
    if (r.class !== 'local') return v;
    return { ...v, action: 'reject', restriction: 'smtpd_reject_unlisted_recipient', reply: classReply(code, '5.1.1', s.recipient, CLASS.recipient, 'User unknown in local recipient table') };
  }

  async check(s: SessionInfo): Promise<Verdict> {
    const delay = this.env.delayReject;
    const early: ListName[] = delay ? ['smtpd_client_restrictions', 'smtpd_helo_restrictions', 'smtpd_sender_restrictions'] : [];
    switch (s.stage) {
      case 'connect':
        return delay ? this.verdict(newState()) : this.sequence(s, ['smtpd_client_restrictions']);
      case 'helo':
        return delay ? this.verdict(newState()) : this.sequence(s, ['smtpd_helo_restrictions']);
      case 'mail':
        if (this.env.heloRequired && !s.helo) return this.verdict(newState(), makeReply(503, '5.5.1', 'Error: send HELO/EHLO first'));
        return delay ? this.verdict(newState()) : this.sequence(s, ['smtpd_sender_restrictions']);
      case 'rcpt':
        // Mail to our own address-verification probe sender (bounces of probes) is exempt from the
        // access restrictions, as in Postfix; the master discards it instead of queueing it.
        if (s.recipient && this.env.verifier?.isProbeSender?.(s.recipient)) return { action: 'accept' };
        return this.unlisted(s, await this.sequence(s, [...early, 'smtpd_relay_restrictions', 'smtpd_recipient_restrictions']));
      case 'data':
        return this.sequence(s, ['smtpd_data_restrictions']);
      case 'end-of-data':
        return this.sequence(s, ['smtpd_end_of_data_restrictions']);
      case 'etrn':
        if (this.env.heloRequired && !s.helo) return this.verdict(newState(), makeReply(503, '5.5.1', 'Error: send HELO/EHLO first'));
        return this.sequence(s, [...(delay ? (['smtpd_client_restrictions', 'smtpd_helo_restrictions'] as ListName[]) : []), 'smtpd_etrn_restrictions']);
    }
  }

  async close(): Promise<void> {
    for (const p of this.env.policies.values()) p.close();
    for (const t of this.env.tables.values()) t.close();
  }
}

/** Parse every list, open every table and policy client; throws an Error naming the problem. */
export function createRestrictionEngine(config: Config, opts: EngineOptions): RestrictionEngine {
  const env = buildEnv(config, opts);
  try {
    return new Engine(env);
  } catch (err) {
    for (const p of env.policies.values()) p.close();
    for (const t of env.tables.values()) t.close();
    throw err;
  }
}
