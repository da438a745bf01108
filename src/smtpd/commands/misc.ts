// The small commands: RSET (ends the transaction), NOOP, QUIT, and VRFY, which never says whether
// an address exists (252: cannot verify, but will take the message) and is refused outright under
// disable_vrfy_command. Trusts nothing the client sends.

import { reply } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import { R } from '../replies.js';
import { check, applyVerdict } from '../verdict.js';
import { addressSyntaxOk } from '../syntax.js';

export async function rset(c: BackstopConnection, arg: string): Promise<boolean> {
  if (arg) {
    await c.respond(reply(501, '5.5.4', 'Syntax: RSET'));
    return false;
  }
  c.state.resetTransaction();
  await c.respond(R.ok);
  return true;
}

export async function noop(c: BackstopConnection): Promise<boolean> {
  await c.respond(R.ok);
  return true;
}

export async function quit(c: BackstopConnection): Promise<boolean> {
  c.ended = true;
  await c.respond(R.bye);
  c.close();
  return true;
}

export async function vrfy(c: BackstopConnection, arg: string): Promise<boolean> {
  const s = c.settings;
  if (s.disableVrfy) {
    await c.respond(reply(502, '5.5.1', 'VRFY command is disabled'));
    return false;
  }
  const words = arg.split(/[ \t]+/).filter(Boolean);
  let smtputf8 = false;
  if (s.smtputf8 && words.length > 1 && words[words.length - 1].toUpperCase() === 'SMTPUTF8') {
    words.pop();
    smtputf8 = true;
  }
  if (!words.length) {
    await c.respond(reply(501, '5.5.4', `Syntax: VRFY address${s.smtputf8 ? ' [SMTPUTF8]' : ''}`));
    return false;
  }
  const given = words.join(' ');
  const address = given.replace(/^<(.*)>$/, '$1');
  if (!address || !addressSyntaxOk(address)) {
    await c.respond(reply(501, '5.1.3', 'Bad recipient address syntax'));
    return false;
  }
  if (s.strictSmtputf8 && !smtputf8 && /[^\x00-\x7f]/.test(address)) {
    c.state.resetTransaction();
    await c.respond(R.declareSmtputf8);
    return false;
  }
  // As Postfix: the recipient restrictions decide, so VRFY tells no more than RCPT would. It
  // still never says whether the address exists: 252, cannot verify but will take the message.
  const v = await check(c, 'rcpt', { recipient: address, recipientCount: c.state.rcpts.length });
  if (!(await applyVerdict(c, v, 'VRFY', address))) return false;
  await c.respond(reply(252, '2.0.0', words[0]));
  return true;
}

/** XCLIENT and XFORWARD: Backstop authorizes no client for them (Postfix's empty *_hosts). */
export function xcommand(name: 'XCLIENT' | 'XFORWARD'): (c: BackstopConnection, arg: string) => Promise<boolean> {
  return async (c, arg) => {
    if (c.state.inTransaction()) {
      await c.respond(reply(503, '5.5.1', 'Error: MAIL transaction in progress'));
      return false;
    }
    if (!arg.trim()) {
      await c.respond(reply(501, '5.5.4', `Syntax: ${name} attribute=value...`));
      return false;
    }
    await c.respond(reply(550, '5.7.0', 'Error: insufficient authorization'));
    return false;
  };
}
