// The probe sender address, as Postfix's verify_sender_addr.c makes and recognises it:
// address_verify_sender qualified with $myorigin; empty or `<>` is the null sender (never
// time-dependent); with address_verify_sender_ttl > 0 a time stamp (epoch / ttl in base 31,
// digits 0-9 and consonants, so it never spells a word) is appended to the local part with no
// delimiter. An incoming address is the probe sender when it matches the current time slot ±1,
// which absorbs clock slippage between MTAs. Trusts its parameters, validated by the caller.

export interface ProbeSenderParams {
  /** address_verify_sender (expanded; default $double_bounce_sender = double-bounce). */
  address_verify_sender: string;
  /** address_verify_sender_ttl in seconds; 0 = a constant sender. */
  address_verify_sender_ttl: number;
  /** myorigin: the domain that qualifies a bare local part. */
  myorigin: string;
}

const SAFE_CHARS = '0123456789BCDFGHJKLMNPQRSTVWXYZ';
const BASE = 31;

/** Postfix's safe_ultostr(…, 31, 0, 0). */
export function safeUltostr(n: number): string {
  let out = '';
  do {
    out = SAFE_CHARS[n % BASE] + out;
    n = Math.floor(n / BASE);
  } while (n > 0);
  return out;
}

function safeStrtoul(s: string): number | undefined {
  if (s.length === 0) return undefined;
  let n = 0;
  for (const ch of s.toUpperCase()) {
    const d = SAFE_CHARS.indexOf(ch);
    if (d < 0) return undefined;
    n = n * BASE + d;
  }
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A bad address_verify_sender value: the message names the parameter, as Postfix's msg_fatal. */
export function checkProbeSender(p: ProbeSenderParams): void {
  const s = p.address_verify_sender;
  if (s === '' || s === '<>') return;
  if (s.startsWith('@')) throw new Error(`parameter address_verify_sender: value "${s}" must not start with '@'`);
  if (s.endsWith('@')) throw new Error(`parameter address_verify_sender: value "${s}" must not end with '@'`);
}

function isNull(p: ProbeSenderParams): boolean {
  return p.address_verify_sender === '' || p.address_verify_sender === '<>';
}

function split(p: ProbeSenderParams): { local: string; domain: string } {
  const s = p.address_verify_sender;
  const at = s.lastIndexOf('@');
  return at < 0 ? { local: s, domain: p.myorigin } : { local: s.slice(0, at), domain: s.slice(at + 1) };
}

/** The probe sender for the time `nowSec` ('' = the null sender). */
export function makeProbeSender(p: ProbeSenderParams, nowSec: number): string {
  checkProbeSender(p);
  if (isNull(p)) return '';
  const { local, domain } = split(p);
  const stamp = p.address_verify_sender_ttl > 0 ? safeUltostr(Math.floor(nowSec / p.address_verify_sender_ttl)) : '';
  return domain ? `${local}${stamp}@${domain}` : `${local}${stamp}`;
}

/**
 * True when `address` is (a recent form of) the probe sender. smtpd exempts it from access
 * restrictions, and mail addressed to it is discarded (Postfix's qmgr does the same).
 */
export function isProbeSender(p: ProbeSenderParams, address: string, nowSec: number): boolean {
  let a = address.trim();
  if (a.startsWith('<') && a.endsWith('>')) a = a.slice(1, -1);
  if (isNull(p)) return a === '';
  if (a === '') return false;
  const { local, domain } = split(p);
  const at = a.lastIndexOf('@');
  const theirLocal = at < 0 ? a : a.slice(0, at);
  const theirDomain = at < 0 ? '' : a.slice(at + 1);
  if (theirDomain.toLowerCase() !== domain.toLowerCase()) return false;
  if (theirLocal.slice(0, local.length).toLowerCase() !== local.toLowerCase()) return false;
  const rest = theirLocal.slice(local.length);
  if (p.address_verify_sender_ttl <= 0) return rest === '';
  const theirs = safeStrtoul(rest);
  if (theirs === undefined) return false;
  const mine = Math.floor(nowSec / p.address_verify_sender_ttl);
  return theirs >= mine - 1 && theirs <= mine + 1;
}
