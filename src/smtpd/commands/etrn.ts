// ETRN (RFC 1985): after HELO/EHLO and outside a transaction, a syntactically valid domain
// (`@` and `#` prefixes accepted) passes the connect and etrn restrictions, then the queue
// manager is asked to flush it: 250 Queuing started, or 458 when it is not eligible or fails.
// Trusts the Flusher's answer; a Flusher error is a 458, never a crash.

import { validHostname, reply } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import { check, applyVerdict } from '../verdict.js';

export async function etrn(c: BackstopConnection, arg: string): Promise<boolean> {
  const st = c.state;
  if (c.settings.heloRequired && !st.helo) {
    await c.respond(reply(503, '', 'Error: send HELO/EHLO first'));
    return false;
  }
  if (st.inTransaction()) {
    await c.respond(reply(503, '', 'Error: MAIL transaction in progress'));
    return false;
  }
  if (!arg || /\s/.test(arg)) {
    await c.respond(reply(500, '', 'Syntax: ETRN domain'));
    return false;
  }
  const domain = arg.replace(/^[@#]/, '');
  // A domain (Postfix's valid_hostname()) or an address literal.
  if (!(/^\[.*\]$/.test(domain) || validHostname(domain))) {
    await c.respond(reply(501, '', 'Error: invalid parameter syntax'));
    return false;
  }
  if (st.connectVerdict && !(await applyVerdict(c, st.connectVerdict, 'CONNECT'))) return false;
  const v = await check(c, 'etrn', { etrnDomain: domain });
  if (!(await applyVerdict(c, v, 'ETRN'))) return false;
  if (!c.ctx.flusher) {
    c.log.warning('unable to talk to fast flush service');
    await c.respond(reply(458, '', 'Unable to queue messages'));
    return false;
  }
  let ok: boolean;
  try {
    ok = await c.ctx.flusher.flushDomain(domain);
  } catch (err) {
    c.log.warning(`unable to talk to fast flush service: ${(err as Error).message}`);
    await c.respond(reply(458, '', 'Unable to queue messages'));
    return false;
  }
  if (!ok) {
    // RFC 1985: 459 when the server refuses to flush this domain; Postfix logs it as a warning.
    c.log.warning(`reject: ETRN ${domain.slice(0, 100)}... from ${st.client}`);
    await c.respond(reply(459, '', `<${domain}>: service unavailable`));
    return false;
  }
  await c.respond(reply(250, '', 'Queuing started'));
  return true;
}
