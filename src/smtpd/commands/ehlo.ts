// HELO and EHLO: the helo restrictions, then the greeting line (HELO) or the EHLO keyword list,
// which offers only what this listener does (SIZE with message_size_limit, VRFY unless
// disable_vrfy_command, STARTTLS before TLS, AUTH mechanisms from Dovecot) minus
// smtpd_discard_ehlo_keywords. A new HELO/EHLO ends any mail transaction.
// Trusts the restriction engine's verdict on the name; the name itself is only logged and passed on.

import { reply } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import { check, applyVerdict } from '../verdict.js';
import { authMechanisms } from './auth.js';

export async function ehlo(c: BackstopConnection, arg: string, esmtp: boolean): Promise<boolean> {
  const { settings: s, state: st } = c;
  if (!arg) {
    await c.respond(reply(501, '', `Syntax: ${esmtp ? 'EHLO' : 'HELO'} hostname`));
    return false;
  }
  st.resetTransaction();
  const helo = arg.split(/\s+/)[0];
  const v = await check(c, 'helo', { helo, protocol: esmtp ? 'ESMTP' : 'SMTP' });
  if (!(await applyVerdict(c, v, esmtp ? 'EHLO' : 'HELO'))) return false;
  st.helo = helo;
  st.esmtp = esmtp;
  st.afterStarttls = false;
  if (!esmtp) {
    await c.respond(reply(250, '', s.myhostname));
    return true;
  }
  const kw: string[] = ['PIPELINING'];
  kw.push(s.messageSizeLimit > 0 ? `SIZE ${s.messageSizeLimit}` : 'SIZE');
  if (!s.disableVrfy) kw.push('VRFY');
  kw.push('ETRN');
  if (s.tls.level !== 'none' && !c.secure) kw.push('STARTTLS');
  const mechs = await authMechanisms(c);
  if (mechs.length) kw.push(`AUTH ${mechs.join(' ')}`);
  kw.push('ENHANCEDSTATUSCODES', '8BITMIME', 'DSN');
  if (s.smtputf8) kw.push('SMTPUTF8');
  kw.push('CHUNKING');
  const lines = [s.myhostname, ...kw.filter((k) => !s.discardEhloKeywords.has(k.split(' ')[0]))];
  await c.respond({ code: 250, lines });
  return true;
}
