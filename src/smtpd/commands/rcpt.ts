// RCPT TO: one recipient of the transaction. In order: a MAIL first, the address and its ESMTP
// parameters (NOTIFY, ORCPT) well formed, SMTPUTF8 declared for a non-ASCII address,
// smtpd_recipient_limit, then the recipient restrictions — where a backup MX decides whether the
// recipient exists on the primary (relay_recipient_maps, verify) and never becomes an open relay.
// Trusts the restriction engine's verdict; everything from the client is checked here first.

import { reply } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import { check, applyVerdict } from '../verdict.js';
import { R } from '../replies.js';
import { splitAddressArg, addressSyntaxOk, parseParams, rcptParams, stripTrailingDot } from '../syntax.js';

export async function rcpt(c: BackstopConnection, arg: string): Promise<boolean> {
  const { settings: s, state: st } = c;
  if (!st.inTransaction()) {
    await c.respond(R.needMail);
    return false;
  }
  if (st.bdatState !== 'none') {
    await c.respond(reply(503, '5.5.1', 'Error: RCPT after BDAT'));
    return false;
  }
  const parts = splitAddressArg(arg, 'TO');
  if (!parts) {
    await c.respond(reply(501, '5.5.4', 'Syntax: RCPT TO:<address>'));
    return false;
  }
  if (!parts.address || !addressSyntaxOk(parts.address)) {
    if (parts.bracketed) c.log.warning(`Illegal address syntax from ${st.client} in RCPT command: <${parts.address}>`);
    await c.respond(reply(501, '5.1.3', 'Bad recipient address syntax'));
    return false;
  }
  if (s.strictSmtputf8 && s.smtputf8 && !st.mailParams.smtputf8 && /[^\x00-\x7f]/.test(parts.address)) {
    await c.respond(R.declareSmtputf8);
    return false;
  }
  const params = parseParams(parts.rest);
  const p = rcptParams(params);
  if ('code' in p) {
    // Postfix's dsn_notify_mask() names the first value it does not know.
    const notify = params.find(([n]) => n === 'NOTIFY')?.[1];
    const unknown = typeof notify === 'string' ? notify.split(',').find((w) => !/^(NEVER|SUCCESS|FAILURE|DELAY)$/i.test(w)) : undefined;
    if (unknown !== undefined && /NOTIFY/.test(p.text)) c.log.warning(`unknown DSN NOTIFY command value "${unknown}" in "${notify}"`);
    await c.respond(p);
    return false;
  }
  if (st.rcpts.length >= s.recipientLimit) {
    // Not an error to Postfix: RFC 5321 lets a client send the rest in another transaction.
    await c.respond(R.tooManyRcpts, { error: false });
    return true;
  }
  const v = await check(c, 'rcpt', { recipient: parts.address, recipientCount: st.rcpts.length });
  if (!(await applyVerdict(c, v, 'RCPT', parts.address))) return false;
  st.rcpts.push({ address: stripTrailingDot(parts.address), ...(p.notify ? { notify: p.notify } : {}), ...(p.orcpt ? { orcpt: p.orcpt } : {}) });
  if (v.prepend) st.prepend.push(...v.prepend);
  await c.respond(reply(250, '2.1.5', 'Ok'));
  return true;
}
