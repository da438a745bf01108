// AUTH (RFC 4954) through Dovecot's auth protocol: offered only when smtpd_sasl_auth_enable is
// on, not yet authenticated, and (under smtpd_tls_auth_only) with TLS; anonymous mechanisms are
// never offered (smtpd_sasl_security_options = noanonymous). Challenges go to the client as 334
// lines and its answers come back through the connection's authNext.
// Trusts the Dovecot server's OK/FAIL; decodes nothing itself beyond checking base64 syntax.

import { reply } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import type { DovecotAuthClient, AuthStep } from '../sasl/dovecot.js';
import { R } from '../replies.js';

/** AUTH is offered when enabled, not yet used, and (under smtpd_tls_auth_only) only with TLS. */
function authAllowed(c: BackstopConnection): boolean {
  const s = c.settings;
  return !!c.ctx.sasl && s.sasl.enabled && !c.state.saslUser && (c.secure || !s.tls.authOnly);
}

/** The mechanisms to offer now (EHLO) or accept (AUTH); none when Dovecot cannot be asked. */
export async function authMechanisms(c: BackstopConnection): Promise<string[]> {
  if (!authAllowed(c) || !c.ctx.sasl) return [];
  try {
    const mechs = await c.ctx.sasl.mechanisms();
    // smtpd_sasl_security_options = noanonymous (Postfix's default).
    return mechs.filter((m) => !m.flags.includes('anonymous')).map((m) => m.name);
  } catch (err) {
    c.log.warning(`SASL: cannot get the mechanism list: ${(err as Error).message}`);
    return [];
  }
}

export async function auth(c: BackstopConnection, arg: string): Promise<boolean | null> {
  const { settings: s, state: st } = c;
  if (!c.ctx.sasl || !s.sasl.enabled) {
    await c.respond(reply(503, '5.5.1', 'Error: authentication not enabled'));
    return false;
  }
  if (!c.secure && s.tls.authOnly) {
    await c.respond(reply(538, '5.7.11', 'Encryption required for requested authentication mechanism'));
    return false;
  }
  if (!st.helo) {
    await c.respond(R.needHelo);
    return false;
  }
  if (st.saslUser) {
    await c.respond(reply(503, '5.5.1', 'Error: already authenticated'));
    return false;
  }
  if (st.inTransaction()) {
    await c.respond(reply(503, '5.5.1', 'Error: MAIL transaction in progress'));
    return false;
  }
  const [mechArg, initialArg, ...extra] = arg.split(/\s+/).filter(Boolean);
  if (!mechArg || extra.length) {
    await c.respond(reply(501, '5.5.4', 'Syntax: AUTH mechanism'));
    return false;
  }
  const mech = mechArg.toUpperCase();
  const mechs = await authMechanisms(c);
  if (!mechs.includes(mech)) {
    await c.respond(reply(535, '5.7.8', 'Error: authentication failed: Invalid authentication mechanism'));
    return false;
  }
  let initial: string | undefined;
  if (initialArg !== undefined) {
    if (initialArg === '=') initial = '';
    else if (!isBase64(initialArg)) {
      await c.respond(reply(501, '5.5.2', 'Cannot decode response'));
      return false;
    } else initial = initialArg;
  }
  const step = await (c.ctx.sasl as DovecotAuthClient).start(mech, initial, {
    localIp: c.localAddress,
    remoteIp: c.remoteAddress,
    localPort: c.localPort,
    remotePort: c.remotePort,
    secured: c.secure,
  });
  return authStep(c, mech, step);
}

/** One step of the exchange: success, failure, or a challenge (null: counted when it ends). */
async function authStep(c: BackstopConnection, mech: string, step: AuthStep): Promise<boolean | null> {
  const st = c.state;
  if (step.kind === 'ok') {
    st.saslUser = step.user;
    st.saslMethod = mech;
    await c.respond(reply(235, '2.7.0', 'Authentication successful'));
    return true;
  }
  if (step.kind === 'fail') {
    const reason = step.reason || 'authentication failure';
    c.log.warning(`${st.client}: SASL ${mech} authentication failed: ${reason}`);
    await c.respond(
      step.temporary
        ? reply(454, '4.7.0', 'Temporary authentication failure: ' + reason)
        : reply(535, '5.7.8', 'Error: authentication failed: ' + reason),
    );
    return false;
  }
  const id = step.id;
  // The challenge goes to the client; its answer (the next line) continues the exchange.
  c.authNext = async (line: string) => {
    const resp = line.trim();
    if (resp === '*') {
      c.count('auth', false);
      await c.respond(reply(501, '5.7.0', 'Authentication aborted'));
      return;
    }
    if (!isBase64(resp)) {
      c.count('auth', false);
      await c.respond(reply(501, '5.5.2', 'Cannot decode response'));
      return;
    }
    const next = await (c.ctx.sasl as DovecotAuthClient).continue(id, resp);
    const ok = await authStep(c, mech, next);
    if (ok !== null) c.count('auth', ok);
  };
  await c.respond({ code: 334, lines: [step.challenge] });
  return null;
}

function isBase64(s: string): boolean {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0;
}
