// STARTTLS (RFC 3207): refused when TLS is active or not configured; otherwise 220, the session
// forgets what it learned in plaintext, and smtp-server performs the upgrade (it retires the
// parser, so plaintext pipelined after the command is discarded, never read as commands).
// Trusts smtp-server's TLS upgrade.

import { reply } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import { countTlsSession } from '../../observe/index.js';

export async function starttls(c: BackstopConnection, arg: string): Promise<boolean> {
  if (arg) {
    await c.respond(reply(501, '5.5.4', 'Syntax: STARTTLS'));
    return false;
  }
  if (c.secure) {
    await c.respond(reply(554, '5.5.1', 'Error: TLS already active'));
    return false;
  }
  if (c.settings.tls.level === 'none') {
    await c.respond(reply(502, '5.5.1', 'Error: command not implemented'));
    return false;
  }
  await c.respond(reply(220, '2.0.0', 'Ready to start TLS'));
  c.state.forgetBeforeTls();
  // The second callback runs once the handshake is done (the session is secure).
  await new Promise<void>((resolve) => c.upgrade(() => resolve(), () => countTlsSession('in')));
  return true;
}
