// access(5): the lookup-key order of check_*_access and the meaning of the value found.
// Addresses: user@domain (with a recipient delimiter first user+ext@domain), the domain and
// its parents (`domain` or `.domain` per parent_domain_matches_subdomains), then user@.
// Hosts: the name and its parents, then the address and its shorter networks (1.2.3.4,
// 1.2.3, 1.2, 1; IPv6 by dropping `:pair`s). Pattern tables (cidr, regexp, pcre) see only the
// whole string. A DUNNO value stops the search (it "pretends the key was not found").
// Values: OK / all-numeric, REJECT, DEFER, DEFER_IF_PERMIT, DEFER_IF_REJECT, 4NN/5NN text,
// DUNNO, HOLD, DISCARD, WARN, INFO, PREPEND, FILTER, REDIRECT, BCC, or restriction names.

import { isIP } from 'node:net';
import type { LookupTable } from '../../tables/index.js';
import { classReply, DUNNO, PERMIT, reject, deferIfPermit, deferIfReject, splitDsn, makeReply, type Decision } from './decision.js';
import type { Ctx } from './context.js';

const PATTERN_TYPES = new Set(['cidr', 'regexp', 'pcre']);

export function isPatternTable(t: LookupTable): boolean {
  return PATTERN_TYPES.has(t.type);
}

type Hit = { value: string; key: string } | undefined;

async function lookup(table: LookupTable, key: string, fold: boolean): Promise<Hit> {
  const k = fold ? key.toLowerCase() : key;
  const v = await table.get(k);
  return v === undefined ? undefined : { value: v, key: k };
}

/** Domain and parents: a.b.c, then b.c, c (parent style) or .b.c, .c. */
export function domainKeys(domain: string, parentMatch: boolean): string[] {
  const keys = [domain];
  let rest = domain;
  for (;;) {
    const dot = rest.indexOf('.', 1);
    if (dot < 0) break;
    rest = rest.slice(dot + 1);
    keys.push(parentMatch ? rest : '.' + rest);
  }
  return keys;
}

/** Network keys: 1.2.3.4, 1.2.3, 1.2, 1 / IPv6 dropping one ':'-group at a time. */
export function addressKeys(addr: string): string[] {
  const keys = [addr];
  if (isIP(addr) === 4) {
    const parts = addr.split('.');
    for (let n = 3; n >= 1; n--) keys.push(parts.slice(0, n).join('.'));
  } else if (isIP(addr) === 6) {
    let rest = addr;
    for (;;) {
      const i = rest.lastIndexOf(':');
      if (i <= 0) break;
      rest = rest.slice(0, i).replace(/:$/, '');
      if (!rest) break;
      keys.push(rest);
    }
  }
  return keys;
}

/** The access(5) key order for an address; `<>` handling is the caller's. */
export function addressLookupKeys(address: string, delimiter: string, parentMatch: boolean): Array<{ key: string; partial: boolean }> {
  const at = address.lastIndexOf('@');
  const local = at >= 0 ? address.slice(0, at) : address;
  const domain = at >= 0 ? address.slice(at + 1) : '';
  const out: Array<{ key: string; partial: boolean }> = [];
  let base = local;
  if (delimiter) {
    const i = [...delimiter].map((d) => local.indexOf(d)).filter((i) => i > 0).sort((a, b) => a - b)[0];
    if (i !== undefined) base = local.slice(0, i);
  }
  if (domain) {
    out.push({ key: `${local}@${domain}`, partial: false });
    if (base !== local) out.push({ key: `${base}@${domain}`, partial: true });
    domainKeys(domain, parentMatch).forEach((k, i) => out.push({ key: k, partial: i > 0 }));
    out.push({ key: `${local}@`, partial: true });
    if (base !== local) out.push({ key: `${base}@`, partial: true });
  } else {
    out.push({ key: local, partial: false });
  }
  return out;
}

/** Look keys up in order; the first hit (DUNNO included) ends the search. */
export async function searchKeys(table: LookupTable, keys: Array<{ key: string; partial: boolean }>): Promise<Hit> {
  const pattern = isPatternTable(table);
  const fold = !(table.type === 'regexp' || table.type === 'pcre');
  for (const { key, partial } of keys) {
    if (pattern && partial) continue;
    const hit = await lookup(table, key, fold);
    if (hit) return hit;
  }
  return undefined;
}

export interface AccessTarget {
  /** "<name>" in replies. */
  name: string;
  replyClass: string;
  /** The table, for log messages. */
  table: string;
}

/** check_table_result(): what a value found in an access table (or a policy reply) means. */
export async function accessAction(ctx: Ctx, value: string, t: AccessTarget): Promise<Decision> {
  const v = value.trim();
  const m = /^(\S+)\s*(.*)$/s.exec(v);
  const cmd = m ? m[1] : '';
  const text = m ? m[2].trim() : '';
  const { env, st } = ctx;
  const c = env.codes;
  if (v === '' ) {
    env.log.warning(`${t.table}: empty access table result for <${t.name}>; ignored`);
    return DUNNO;
  }
  const upper = cmd.toUpperCase();
  if (upper === 'OK' || /^\d+$/.test(v)) return PERMIT;
  const numeric = /^([245]\d\d)(?:\s+(.*))?$/s.exec(v);
  if (numeric && (v[0] === '4' || v[0] === '5')) {
    const code = Number(numeric[1]);
    const def = code === 421 || code === 521 ? (code === 421 ? '4.7.0' : '5.7.0') : v[0] === '4' ? '4.7.1' : '5.7.1';
    const d = splitDsn(def, numeric[2] ?? '');
    return reject(classReply(code, d.dsn, t.name, t.replyClass, d.text || 'Access denied'));
  }
  switch (upper) {
    case 'REJECT': {
      const d = splitDsn('5.7.1', text);
      return reject(classReply(c.access_map_reject_code, d.dsn, t.name, t.replyClass, d.text || 'Access denied'));
    }
    case 'DEFER': {
      const d = splitDsn('4.7.1', text);
      return reject(classReply(c.access_map_defer_code, d.dsn, t.name, t.replyClass, d.text || 'Access denied'));
    }
    case 'DEFER_IF_PERMIT': {
      const d = splitDsn('4.7.1', text);
      return deferIfPermit(classReply(c.access_map_defer_code, d.dsn, t.name, t.replyClass, d.text || 'Service unavailable'));
    }
    case 'DEFER_IF_REJECT': {
      const d = splitDsn('4.7.1', text);
      return deferIfReject(classReply(c.access_map_defer_code, d.dsn, t.name, t.replyClass, d.text || 'Service unavailable'));
    }
    case 'DUNNO':
      return DUNNO;
    case 'HOLD':
      st.hold = text || `<${t.name}>: ${t.replyClass} triggers HOLD action`;
      return DUNNO;
    case 'DISCARD':
      st.discard = text || `<${t.name}>: ${t.replyClass} triggers DISCARD action`;
      return PERMIT;
    case 'WARN':
      st.info.push(`warn: ${t.replyClass} <${t.name}>: ${text}`);
      st.warnings.push(text);
      return DUNNO;
    case 'INFO':
      st.info.push(`info: ${t.replyClass} <${t.name}>: ${text}`);
      return DUNNO;
    case 'PREPEND':
      if (ctx.s.stage === 'end-of-data') {
        env.log.warning(`access table ${t.table}: with PREPEND action in end-of-data restrictions: ignored`);
        return DUNNO;
      }
      if (!/^[\x21-\x39\x3b-\x7e]+:/.test(text)) {
        env.log.warning(`access table ${t.table}: PREPEND action without valid header: "${text}"`);
        return DUNNO;
      }
      st.prepend.push(text);
      return DUNNO;
    case 'FILTER':
      st.filter = text;
      return DUNNO;
    case 'REDIRECT':
      st.redirect = text;
      return DUNNO;
    case 'BCC':
      st.bcc.push(text);
      return DUNNO;
  }
  // Restriction names (or a restriction class) as the action.
  let list = env.actionLists.get(v);
  if (!list) {
    try {
      list = env.compile(v.split(/[\s,]+/).filter(Boolean), `access table ${t.table}`);
    } catch (err) {
      env.log.warning(`access table ${t.table}: ${(err as Error).message}`);
      return reject(makeReply(451, '4.3.5', 'Server configuration error'));
    }
    env.actionLists.set(v, list);
  }
  return ctx.run(list);
}
