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
  let ok = false;
  if (c.ctx.flusher) {
    try {
      ok = await c.ctx.flusher.flushDomain(domain);
    } catch (err) {
      c.log.warning(`ETRN ${domain} from ${st.client}: ${(err as Error).message}`);
    }
  }
  await c.respond(ok ? reply(250, '', 'Queuing started') : reply(458, '', 'Unable to queue messages'));
  return ok;
}
