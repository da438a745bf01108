// Shared state of the restriction engine. `Env` is built once at load (parameters read, match
// lists compiled, tables and policy clients opened); `Ctx` is what one restriction sees while a
// list is evaluated: the session, the per-request evaluation state (defer_if_permit,
// defer_if_reject, warn_if_reject, access(5) side effects), and the reply name and class of
// the list being evaluated. Pure types plus small helpers.

import type { Config } from '../../config/index.js';
import type { MxResult, DnsResult, RblResult, RblFilter } from '../../dns/index.js';
import type { Logger } from '../../log/index.js';
import type { Reply } from '../../mail/index.js';
import type { LookupTable, TableList } from '../../tables/index.js';
import type { Verifier } from '../../verify/types.js';
import type { PolicyClient } from '../../policy/index.js';
import type { Decision } from './decision.js';
import type { MatchList } from './matchlist.js';
import type { Resolved } from './resolve.js';
import type { SessionInfo } from './types.js';

/** What the engine needs from src/dns (the Resolver satisfies it). */
export interface CheckDns {
  mx(domain: string): Promise<MxResult>;
  a(name: string): Promise<DnsResult<string>>;
  aaaa(name: string): Promise<DnsResult<string>>;
  rblLookup(domain: string, ip: string, filter?: RblFilter): Promise<RblResult>;
  rhsblLookup(domain: string, name: string, filter?: RblFilter): Promise<RblResult>;
}

export type RestrictionFn = (ctx: Ctx) => Decision | Promise<Decision>;

export interface CompiledRestriction {
  /** The restriction name, e.g. `check_client_access`. */
  name: string;
  /** Its argument, e.g. `cidr:/etc/backstop/access_client`. */
  arg?: string;
  fn: RestrictionFn;
}

export type CompiledList = CompiledRestriction[];

export interface Codes {
  access_map_reject_code: number;
  access_map_defer_code: number;
  reject_code: number;
  defer_code: number;
  relay_domains_reject_code: number;
  maps_rbl_reject_code: number;
  unknown_address_reject_code: number;
  unknown_client_reject_code: number;
  invalid_hostname_reject_code: number;
  non_fqdn_reject_code: number;
  unverified_recipient_reject_code: number;
  unverified_recipient_defer_code: number;
  unverified_sender_reject_code: number;
  unverified_sender_defer_code: number;
  unknown_relay_recipient_reject_code: number;
}

export interface Env {
  config: Config;
  dns: CheckDns;
  verifier?: Verifier;
  myAddresses: () => string[];
  log: Logger;
  now: () => number;
  codes: Codes;
  softBounce: boolean;
  delayReject: boolean;
  heloRequired: boolean;
  /** smtpd_reject_unlisted_recipient: unknown_local_recipient_reject_code for our own (local-class) addresses. */
  rejectUnlistedLocal: number | false;
  allowUntrustedRouting: boolean;
  accessParentMatch: boolean;
  recipientDelimiter: string;
  nullAccessKey: string;
  mynetworks: MatchList;
  mxBackupNetworks: MatchList;
  mydestination: MatchList;
  relayDomains: MatchList;
  /** proxy_interfaces and explicit inet_interfaces addresses. */
  extraAddresses: string[];
  relayRecipientMaps?: TableList;
  rblReplyMaps?: TableList;
  defaultRblReply: string;
  tempfailActions: { recipient: string; sender: string; unknownAddress: string };
  unverifiedReasons: { recipient: string; sender: string };
  /** Tables opened so far, by reference (each opened once). */
  tables: Map<string, LookupTable>;
  policies: Map<string, PolicyClient>;
  /** smtpd_restriction_classes, compiled. */
  classes: Map<string, CompiledList>;
  /** Restriction lists found as access(5) actions, compiled on first use. */
  actionLists: Map<string, CompiledList>;
  /** Resolve a recipient or sender (class, routing). */
  resolve(address: string): Promise<Resolved>;
  /** Compile a restriction list (classes and access-map actions use it too). */
  compile(elements: string[], where: string): CompiledList;
  openTable(ref: string): LookupTable;
}

/** Per-request evaluation state (smtpd's defer_if_permit/defer_if_reject/warn_if_reject). */
export interface EvalState {
  deferIfPermit?: Reply;
  deferIfReject?: Reply;
  /** warn_if_reject: applies to the next restriction only. */
  warnNext: boolean;
  warnings: string[];
  hold?: string;
  discard?: string;
  prepend: string[];
  filter?: string;
  redirect?: string;
  bcc: string[];
  info: string[];
  depth: number;
  /** The restriction whose reject (or defer_if_permit) decided: the innermost one (metrics). */
  decidedBy?: string;
  deferIfPermitBy?: string;
}

export interface Ctx {
  s: SessionInfo;
  st: EvalState;
  env: Env;
  /** "<name>" of replies: the client `name[addr]`, HELO name, address, DATA, ... */
  replyName: string;
  replyClass: string;
  /** The list being evaluated (smtpd_recipient_restrictions, ...). */
  list: string;
  /** Run a nested list (restriction classes, access actions) with the same state. */
  run(list: CompiledList): Promise<Decision>;
}

export function newState(): EvalState {
  return { warnNext: false, warnings: [], prepend: [], bcc: [], info: [], depth: 0 };
}

export function namaddr(s: SessionInfo): string {
  return `${s.clientName || 'unknown'}[${s.clientAddress}]`;
}
