// The original client for the primary, so that its own restrictions, SPF, DNSBL and rate checks
// see the real sender's client instead of the backup MX:
// - XFORWARD (Postfix's smtp_send_xforward_command, XFORWARD_README): before MAIL FROM, two
//   commands as smtp_proto.c builds them — "XFORWARD NAME= ADDR=" and "XFORWARD PROTO= HELO=
//   SOURCE=" — with only the attributes the server announced and the values known ("unknown" is
//   left out); a non-2xx reply is a warning and the transaction goes on.
// - XCLIENT (XCLIENT_README, backstop_smtp_send_xclient): "XCLIENT NAME= ADDR= PROTO= HELO=",
//   answered by a new 220 greeting after which the session starts over with EHLO in the original
//   client's name (Postfix's smtpd takes the HELO name from that EHLO); a refusal is a warning
//   and the mail goes on as from us. Such a session is never reused (client.ts says why).
// Values are xtext (RFC 3461). Trusts the queue file's client attributes (recorded by our smtpd).

import { isIPv6 } from 'node:net';
import type { Conn } from './conn.js';
import type { Features } from './handshake.js';

/** The client that gave us the message (the queue file's client attributes). */
export interface OriginalClient {
  /** Verified name or "unknown". */
  name: string;
  address: string;
  helo: string;
  /** SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA. */
  protocol: string;
}

/** RFC 3461 xtext, as Postfix's xtext_quote(): "+XX" for '+', '=', controls, space and non-ASCII. */
export function xtext(s: string): string {
  let out = '';
  for (const ch of Buffer.from(s, 'utf8')) {
    out += ch < 33 || ch > 126 || ch === 0x2b || ch === 0x3d ? '+' + ch.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(ch);
  }
  return out;
}

const known = (v: string | undefined): v is string => !!v && v.toLowerCase() !== 'unknown';

/** The XFORWARD commands for `client` that the server's announced attributes allow. */
export function xforwardCommands(offered: readonly string[], client: OriginalClient): string[] {
  const has = (a: string) => offered.includes(a);
  const first: string[] = [];
  if (has('NAME') && known(client.name)) first.push(`NAME=${xtext(client.name)}`);
  if (has('ADDR') && known(client.address)) first.push(`ADDR=${xtext(client.address)}`);
  const second: string[] = [];
  if (has('PROTO') && known(client.protocol)) second.push(`PROTO=${xtext(client.protocol)}`);
  if (has('HELO') && client.helo) second.push(`HELO=${xtext(client.helo)}`);
  // Mail we relay for others came from remote clients (Postfix's rewrite context "remote").
  if (has('SOURCE')) second.push('SOURCE=REMOTE');
  return [first, second].filter((w) => w.length).map((w) => `XFORWARD ${w.join(' ')}`);
}

/** The XCLIENT command for `client` (attributes the server announced), or undefined. */
export function xclientCommand(offered: readonly string[], client: OriginalClient): string | undefined {
  const has = (a: string) => offered.includes(a);
  const words: string[] = [];
  if (has('NAME')) words.push(`NAME=${known(client.name) ? xtext(client.name) : '[UNAVAILABLE]'}`);
  if (has('ADDR') && known(client.address)) words.push(`ADDR=${xtext(isIPv6(client.address) ? `IPV6:${client.address}` : client.address)}`);
  // XCLIENT knows SMTP and ESMTP only; ESMTPS/ESMTPA/ESMTPSA are ESMTP.
  if (has('PROTO') && known(client.protocol)) words.push(`PROTO=${client.protocol.toUpperCase().startsWith('ESMTP') ? 'ESMTP' : 'SMTP'}`);
  if (has('HELO') && client.helo) words.push(`HELO=${xtext(client.helo)}`);
  return words.length ? `XCLIENT ${words.join(' ')}` : undefined;
}

export interface ClientAttrOptions {
  xforward: boolean;
  xclient: boolean;
  /** EHLO again after XCLIENT's greeting (with the original client's HELO name); returns the new features. */
  rehello: () => Promise<Features>;
}

/**
 * Tells the server who the original client was, before MAIL FROM. Returns the features to use
 * from here on (new ones after XCLIENT) and whether the session now speaks as the original client
 * (XCLIENT accepted). Throws SessionError only when the session breaks.
 */
export async function sendOriginalClient(c: Conn, f: Features, client: OriginalClient, o: ClientAttrOptions): Promise<{ features: Features; impersonating: boolean }> {
  // Mail we made ourselves (bounces, delay notices) has no client to tell about (Postfix: "send
  // client attribute information only if it exists").
  if (!known(client.address)) return { features: f, impersonating: false };
  const warn = (text: string, cmd: string) => c.opts.logger?.warning(`host ${c.relay} said: ${text} (in reply to ${cmd})`);
  if (o.xclient && f.xclient.length) {
    const cmd = xclientCommand(f.xclient, client);
    if (cmd) {
      c.write(`${cmd}\r\n`, 'sending XCLIENT');
      const r = await c.read(c.t.smtp_helo_timeout, 'sending XCLIENT');
      if (r.code === 220) {
        // The primary now takes us for the original client: XFORWARD would say the same again.
        return { features: await o.rehello(), impersonating: true };
      }
      warn(r.text, 'XCLIENT command');
    }
  }
  if (o.xforward && f.xforward.length) {
    const cmds = xforwardCommands(f.xforward, client);
    for (const cmd of cmds) {
      c.write(`${cmd}\r\n`, 'sending XFORWARD');
      const r = await c.read(c.t.smtp_mail_timeout, 'sending XFORWARD');
      // Postfix's names for the two commands (xfer_request[] in smtp_proto.c).
      if (r.code < 200 || r.code >= 300) warn(r.text, / (NAME|ADDR)=/.test(cmd) ? 'XFORWARD name/address command' : 'XFORWARD helo/protocol command');
    }
  }
  return { features: f, impersonating: false };
}
