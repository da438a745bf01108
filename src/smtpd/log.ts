// smtpd's maillog lines, one function per Postfix format (connect, disconnect with command
// counts, NOQUEUE reject, lost connection / timeout / too many errors after CMD, client=).
// Trusts its callers for the values; only formats.

import type { Logger } from '../log/index.js';
import type { Reply } from '../mail/index.js';
import { formatReply } from '../mail/index.js';

/** `name[addr]` as Postfix prints a client. */
export function clientId(name: string, addr: string): string {
  return `${name}[${addr}]`;
}

export function logConnect(log: Logger, client: string): void {
  log.info(`connect from ${client}`);
}

/** Postfix's smtpd_cmd_table order, used for the disconnect line. */
export const COMMAND_ORDER = ['helo', 'ehlo', 'xclient', 'xforward', 'starttls', 'auth', 'mail', 'rcpt', 'data', 'bdat', 'rset', 'noop', 'vrfy', 'etrn', 'quit', 'unknown'];

export interface CommandStat {
  ok: number;
  total: number;
}

function stat(name: string, s: CommandStat): string {
  return s.ok === s.total ? `${name}=${s.total}` : `${name}=${s.ok}/${s.total}`;
}

/** `disconnect from name[IP] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4` */
export function logDisconnect(log: Logger, client: string, stats: ReadonlyMap<string, CommandStat>): void {
  const parts: string[] = [];
  const all: CommandStat = { ok: 0, total: 0 };
  for (const name of COMMAND_ORDER) {
    const s = stats.get(name);
    if (!s) continue;
    parts.push(stat(name, s));
    all.ok += s.ok;
    all.total += s.total;
  }
  parts.push(stat('commands', all));
  log.info(`disconnect from ${client} ${parts.join(' ')}`);
}

export interface RejectContext {
  queueId?: string;
  /** CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, ETRN, VRFY */
  stage: string;
  client: string;
  sender?: string;
  recipient?: string;
  protocol: string;
  helo?: string;
}

function whatsup(ctx: RejectContext, event: string, text: string): string {
  let s = `${ctx.queueId ?? 'NOQUEUE'}: ${event}: ${ctx.stage} from ${ctx.client}: ${text};`;
  if (ctx.sender !== undefined) s += ` from=<${ctx.sender}>`;
  if (ctx.recipient !== undefined) s += ` to=<${ctx.recipient}>`;
  s += ` proto=${ctx.protocol}`;
  if (ctx.helo) s += ` helo=<${ctx.helo}>`;
  return s;
}

/** `NOQUEUE: reject: RCPT from name[IP]: 554 5.7.1 <a@b>: Relay access denied; from=<s> to=<r> proto=ESMTP helo=<h>` */
export function logReject(log: Logger, ctx: RejectContext, r: Reply): void {
  log.info(whatsup(ctx, 'reject', formatReply(r)));
}

/** `QID: reject: END-OF-MESSAGE from ...: bare <LF> received; from=<s> ...` (a reject without a reply code). */
export function logRejectText(log: Logger, ctx: RejectContext, text: string): void {
  log.info(whatsup(ctx, 'reject', text));
}

/** `NOQUEUE: warn: RCPT from ...: text; from=<s> ...` (access(5) WARN, warn_if_reject). */
export function logWarn(log: Logger, ctx: RejectContext, text: string): void {
  log.info(whatsup(ctx, 'warn', text));
}

/** `NOQUEUE: hold: RCPT from ...: <a@b>: Recipient address triggers HOLD action; from=<s> ...` (access(5) HOLD / DISCARD). */
export function logAction(log: Logger, action: 'hold' | 'discard', ctx: RejectContext, text: string): void {
  log.info(whatsup(ctx, action, text));
}

/** `lost connection after DATA from name[IP]` (also `timeout after`, `too many errors after`). */
export function logAfter(log: Logger, what: 'lost connection' | 'timeout' | 'too many errors', lastCommand: string, client: string, extra = ''): void {
  log.info(`${what} after ${lastCommand}${extra} from ${client}`);
}

/** `improper command pipelining after EHLO from name[IP]: MAIL FROM:<...>` */
export function logPipelining(log: Logger, lastCommand: string, client: string, pending: string): void {
  log.info(`improper command pipelining after ${lastCommand} from ${client}: ${pending}`);
}

/** `ID: client=name[addr]`, plus `sasl_method=, sasl_username=` when authenticated. */
export function logClientLine(log: Logger, id: string, client: string, sasl?: { method: string; username: string }): void {
  log.info(sasl ? `${id}: client=${client}, sasl_method=${sasl.method}, sasl_username=${sasl.username}` : `${id}: client=${client}`);
}
