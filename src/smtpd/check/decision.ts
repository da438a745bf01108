// The restriction engine's vocabulary: the Decision one restriction returns, and the reply
// helpers that format rejections exactly as Postfix's smtpd_check.c does
// ("<name>: Class rejected: text", enhanced status codes fixed to the reply code and to the
// address class). Pure functions; trusts its callers for the texts.

import { reply, type Reply } from '../../mail/index.js';

/**
 * The result of one restriction. `permit` ends the list; `reject` ends the stage (a 4xx reply is
 * a deferral); `defer_if_permit` / `defer_if_reject` are remembered and evaluation goes on, as
 * Postfix's DEFER_IF_PERMIT/DEFER_IF_REJECT do; `dunno` goes on to the next restriction.
 */
export type Decision =
  | { kind: 'dunno' }
  | { kind: 'permit' }
  | { kind: 'reject'; reply: Reply }
  | { kind: 'defer_if_permit'; reply: Reply }
  | { kind: 'defer_if_reject'; reply: Reply };

export const DUNNO: Decision = Object.freeze({ kind: 'dunno' });
export const PERMIT: Decision = Object.freeze({ kind: 'permit' });

export const reject = (r: Reply): Decision => ({ kind: 'reject', reply: r });
export const deferIfPermit = (r: Reply): Decision => ({ kind: 'defer_if_permit', reply: r });
export const deferIfReject = (r: Reply): Decision => ({ kind: 'defer_if_reject', reply: r });

/** Reply classes, as smtpd.h's SMTPD_NAME_* (they appear in "<x>: Class rejected: ..."). */
export const CLASS = {
  client: 'Client host',
  reverseClient: 'Client host',
  helo: 'Helo command',
  sender: 'Sender address',
  recipient: 'Recipient address',
  etrn: 'Etrn command',
  data: 'Data command',
  eod: 'End-of-data command',
} as const;

/**
 * smtpd_dsn_fix(): make a detail code fit the address class. A "bad destination" code used for
 * a sender becomes the matching "bad sender" code and vice versa; either used for something
 * that is not an address becomes x.7.1.
 */
export function fixDsn(dsn: string, replyClass: string): string {
  const m = /^([245])\.1\.(\d+)$/.exec(dsn);
  if (!m) return dsn;
  const [, klass, detail] = m;
  const badRcpt = ['1', '2', '3', '4', '5', '6'].includes(detail);
  const badSender = ['7', '8'].includes(detail);
  if (replyClass === CLASS.sender) {
    if (badRcpt) return `${klass}.1.${detail === '2' ? '8' : '7'}`;
    return dsn;
  }
  if (replyClass === CLASS.recipient) {
    if (badSender) return `${klass}.1.${detail === '8' ? '2' : '1'}`;
    return dsn;
  }
  return badRcpt || badSender ? `${klass}.7.1` : dsn;
}

/** dsn_split(): an optional leading "d.d.d " in a text overrides the default detail code. */
export function splitDsn(defaultDsn: string, text: string): { dsn: string; text: string } {
  const m = /^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)(.*)$/s.exec(text.trim());
  if (m) return { dsn: m[1], text: m[2] };
  return { dsn: defaultDsn, text: text.trim() };
}

/** A reply whose enhanced code's class digit follows the reply code (smtpd_check_reject). */
export function makeReply(code: number, dsn: string, text: string): Reply {
  const fixed = dsn ? String(code)[0] + dsn.slice(1) : dsn;
  return reply(code, fixed, text);
}

/** The usual "<name>: Class rejected: text" reply. */
export function classReply(code: number, dsn: string, name: string, replyClass: string, text: string): Reply {
  return makeReply(code, fixFor(dsn, replyClass), `<${name}>: ${replyClass} rejected: ${text}`);
}

function fixFor(dsn: string, replyClass: string): string {
  return fixDsn(dsn, replyClass);
}
