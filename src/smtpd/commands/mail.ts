// MAIL FROM: starts a transaction. In order: HELO/EHLO when required (and again after STARTTLS),
// STARTTLS first under smtpd_tls_security_level = encrypt, no nested MAIL, the address and its
// ESMTP parameters (SIZE, BODY, RET, ENVID, SMTPUTF8, AUTH) well formed, SIZE within
// message_size_limit, a delayed connect reject, then the sender restrictions.
// Trusts the restriction engine's verdict; everything from the client is checked here first.

import { reply, type Reply } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import { check, applyVerdict } from '../verdict.js';
import { R } from '../replies.js';
import * as slog from '../log.js';
import { splitAddressArg, addressSyntaxOk, parseParams, mailParams, stripTrailingDot } from '../syntax.js';

export async function mail(c: BackstopConnection, arg: string): Promise<boolean> {
  const { settings: s, state: st } = c;
  if ((s.heloRequired && !st.helo) || (st.afterStarttls && !st.helo)) {
    await c.respond(R.needHelo);
    return false;
  }
  if (s.tls.level === 'encrypt' && !c.secure) {
    await c.respond(R.starttlsFirst);
    return false;
  }
  if (st.inTransaction()) {
    await c.respond(R.nested);
    return false;
  }
  if (st.bdatState !== 'none') {
    await c.respond(reply(503, '5.5.1', 'Error: MAIL after BDAT'));
    return false;
  }
  const parts = splitAddressArg(arg, 'FROM');
  if (!parts) {
    await c.respond(reply(501, '5.5.4', 'Syntax: MAIL FROM:<address>'));
    return false;
  }
  if (!addressSyntaxOk(parts.address)) {
    if (parts.bracketed) c.log.warning(`Illegal address syntax from ${st.client} in MAIL command: <${parts.address}>`);
    await c.respond(reply(501, '5.1.7', 'Bad sender address syntax'));
    return false;
  }
  const p = mailParams(parseParams(parts.rest), { smtputf8: s.smtputf8 });
  if ('code' in p) {
    await c.respond(p);
    return false;
  }
  if (s.strictSmtputf8 && s.smtputf8 && !p.smtputf8 && /[^\x00-\x7f]/.test(parts.address)) {
    await c.respond(R.declareSmtputf8);
    return false;
  }
  if (p.size !== undefined && s.messageSizeLimit > 0 && p.size > s.messageSizeLimit) {
    slog.logReject(c.log, { ...st.rejectCtx('MAIL'), sender: parts.address }, R.sizeLimit);
    await c.respond(R.sizeLimit);
    return false;
  }
  if (st.connectVerdict && !(await applyVerdict(c, st.connectVerdict, 'CONNECT'))) return false;
  const v = await check(c, 'mail', { sender: parts.address, size: p.size });
  // The log lines name the sender being tried, which is not yet the session's sender.
  const ctx = { ...st.rejectCtx('MAIL'), sender: parts.address };
  if (v.action === 'reject') {
    slog.logReject(c.log, ctx, v.reply as Reply);
    await c.respond(v.reply as Reply);
    return false;
  }
  for (const w of v.warnings ?? []) slog.logWarn(c.log, ctx, w);
  st.sender = stripTrailingDot(parts.address);
  st.mailParams = p;
  st.rcpts = [];
  st.prepend = [...(v.prepend ?? [])];
  await c.respond(reply(250, '2.1.0', 'Ok'));
  return true;
}
