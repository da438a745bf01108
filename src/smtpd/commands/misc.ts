// The small commands: RSET (ends the transaction), NOOP, QUIT, and VRFY, which never says whether
// an address exists (252: cannot verify, but will take the message) and is refused outright under
// disable_vrfy_command. Trusts nothing the client sends.

import { reply } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import { R } from '../replies.js';

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
  if (c.settings.disableVrfy) {
    await c.respond(reply(502, '5.5.1', 'VRFY command is disabled'));
    return false;
  }
  if (!arg) {
    await c.respond(reply(501, '5.5.4', 'Syntax: VRFY address'));
    return false;
  }
  await c.respond(reply(252, '2.0.0', arg));
  return true;
}
