// Delivery log lines of the SMTP client, one typed function per format, as Postfix's
// log_adhoc.c writes them: `ID: to=<rcpt>, [orig_to=<o>, ]relay=..., [conn_use=N, ]delay=T,
// delays=a/b/c/d, dsn=X.Y.Z, status=S (text)`, plus the "connect to" and TLS lines of smtp(8).
// Times are formatted with format_tv()'s rule: two significant digits, nothing below the
// resolution limit (delay_logging_resolution_limit, default 2 decimals), whole seconds from 100s.

import type { Logger } from '../log/index.js';
import { delivered } from '../observe/index.js';

/** Postfix's format_tv(sec, usec, sig_dig, max_dig). */
export function formatTv(seconds: number, sigDig = 2, maxDig = 2): string {
  const MILLION = 1_000_000;
  if (!(seconds >= 0)) seconds = 0;
  let sec = Math.floor(seconds);
  let usec = Math.round((seconds - sec) * MILLION);
  if (usec >= MILLION) { sec += 1; usec -= MILLION; }
  const pow10 = [1, 10, 100, 1000, 10000, 100000, 1000000];
  let ures = MILLION / pow10[maxDig];
  const wid = pow10[sigDig];
  if (ures < MILLION) {
    if (sec > 0) {
      let n = 1;
      while (sec >= n && n <= wid / 10) n *= 10;
      ures = (MILLION / wid) * n;
    } else {
      while (usec >= wid * ures) ures *= 10;
    }
  }
  if (ures > 1) {
    usec += Math.floor(ures / 2);
    if (usec >= MILLION) { sec += 1; usec -= MILLION; }
  }
  let s = String(sec);
  if (usec >= ures) {
    s += '.';
    let rem = usec;
    for (let n = MILLION / 10; rem >= ures && n > 0; n = Math.floor(n / 10)) {
      s += '0123456789'[Math.floor(rem / n)];
      rem %= n;
    }
  }
  return s;
}

/** The four delay components of Postfix, in seconds. */
export interface Delays {
  /** Arrival → last active-queue entry. */
  beforeActive: number;
  /** Active queue → delivery agent (here: deliver() call) . */
  inActive: number;
  /** Connection setup incl. DNS, greeting, EHLO, STARTTLS. */
  setup: number;
  /** Transmission. */
  transmission: number;
  /** Total: arrival → done. */
  total: number;
}

export type DeliveryStatus = 'sent' | 'deferred' | 'bounced' | 'deliverable' | 'undeliverable';

export interface DeliveryLogEntry {
  queueId: string;
  recipient: string;
  /** DSN ORCPT address (logged as orig_to when it differs). */
  origRecipient?: string;
  /** "host[ip]:port" or "none". */
  relay: string;
  /** Number of times the connection was used, counting this one (logged when > 1). */
  connUse?: number;
  delays: Delays;
  dsn: string;
  status: DeliveryStatus;
  text: string;
}

export function formatDeliveryLine(e: DeliveryLogEntry, maxDig = 2): string {
  let s = `${e.queueId}: to=<${e.recipient}>`;
  if (e.origRecipient && e.origRecipient.toLowerCase() !== e.recipient.toLowerCase()) s += `, orig_to=<${e.origRecipient}>`;
  s += `, relay=${e.relay}`;
  if (e.connUse && e.connUse > 1) s += `, conn_use=${e.connUse}`;
  const d = e.delays;
  s += `, delay=${formatTv(d.total, 2, maxDig)}, delays=${formatTv(d.beforeActive, 2, maxDig)}/${formatTv(d.inActive, 2, maxDig)}/${formatTv(d.setup, 2, maxDig)}/${formatTv(d.transmission, 2, maxDig)}`;
  s += `, dsn=${e.dsn}, status=${e.status} (${e.text})`;
  return s;
}

export function logDelivery(log: Logger, e: DeliveryLogEntry, maxDig = 2): void {
  log.info(formatDeliveryLine(e, maxDig));
  // Every delivery result passes here once: the metrics and the destination view count it.
  delivered(e.recipient, e.relay, e.status, e.text);
}

/** `connect to NAME[IP]:PORT: reason` (smtp_connect.c), logged for each failed address. */
export function logConnectFailure(log: Logger, text: string): void {
  log.info(text);
}

/** `Untrusted TLS connection established to NAME[IP]:PORT: TLSv1.3 with cipher C (256/256 bits)`. */
export function formatTlsLine(trust: 'Verified' | 'Trusted' | 'Untrusted' | 'Anonymous', relay: string, protocol: string, cipher: string, bits?: number): string {
  const b = bits ? ` (${bits}/${bits} bits)` : '';
  return `${trust} TLS connection established to ${relay}: ${protocol} with cipher ${cipher}${b}`;
}
