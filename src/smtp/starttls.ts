// The TLS handshake of an outbound session after "220" to STARTTLS, and what the certificate is
// worth, as Postfix's tls_client.c and smtp_proto.c judge it: "Trusted" when a CA in
// smtp_tls_CAfile (else Node's roots and NODE_EXTRA_CA_CERTS) vouches for the chain, "Verified"
// when the level requires a match and the certificate matches (verify/secure: the name patterns;
// dane: the TLSA records), "Untrusted" otherwise, "Anonymous" without a certificate. A level that
// requires a match and does not get one ends the session ("Server certificate not verified");
// a failed handshake is "Cannot start TLS: handshake failure" — at `may` flagged for a retry in
// plain text when the caller allows it. The socket is only handed back once the policy is met,
// so no command is ever sent in plain text after a failed mandatory handshake.

import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { cipherBits } from '../mail/index.js';
import { SessionError, type Conn } from './conn.js';
import { daneVerify } from './dane.js';
import { formatTlsLine } from './log.js';
import { countTlsSession } from '../observe/index.js';
import type { SessionTls } from './options.js';
import { certMatches, protocolRange } from './tls-policy.js';

/** A handshake failure that may be retried in plain text (level may, Postfix's RETRY_AS_PLAINTEXT). */
export class TlsHandshakeError extends SessionError {
  constructor(text: string, readonly retryPlain: boolean) {
    super('tls', '4.7.5', text);
  }
}

/** The TLS handshake over the connection's socket, which it then replaces; logs Postfix's TLS line. */
export async function startTls(c: Conn, tls: SessionTls): Promise<void> {
  const name = c.address.name;
  const servername = /^[\d.]+$|:/.test(name) ? undefined : name;
  const plain = c.socket;
  plain.removeAllListeners('data');
  plain.removeAllListeners('close');
  c.reader.reset();
  const range = protocolRange(tls.protocols);
  const sock = await new Promise<TLSSocket>((resolve, reject) => {
    const s = tlsConnect({
      socket: plain,
      servername,
      ca: c.opts.tlsCa,
      rejectUnauthorized: false,
      // The name check is ours (below), against the policy's patterns; Node's default would
      // check "localhost" when there is no SNI name and fold that into `authorized`.
      checkServerIdentity: () => undefined,
      minVersion: range.minVersion,
      maxVersion: range.maxVersion,
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new SessionError('timeout', '4.4.2', `conversation with ${c.host} timed out while performing the STARTTLS handshake`));
    }, c.t.smtp_starttls_timeout * 1000);
    s.once('secureConnect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (err: Error) => {
      clearTimeout(timer);
      c.opts.logger?.info(`SSL_connect error to ${c.relay}: ${err.message}`);
      reject(new TlsHandshakeError('Cannot start TLS: handshake failure', tls.level === 'may' && !!tls.plaintextFallback));
    });
  }).catch((err) => {
    c.dead = true;
    plain.destroy();
    throw err;
  });
  const cert = sock.getPeerCertificate(true) as PeerCertificate;
  const present = !!cert && !!cert.raw;
  const trusted = present && sock.authorized;
  let matched = false;
  let why: string | undefined;
  if (tls.level === 'dane' && tls.tlsa) {
    why = present ? daneVerify(cert, tls.tlsa, { base: tls.daneBase ?? name, nexthop: tls.nexthop }) : 'no certificate presented';
    matched = !why;
  } else if (tls.level === 'verify' || tls.level === 'secure') {
    if (!trusted) why = `untrusted issuer: ${sock.authorizationError ?? 'no certificate'}`;
    else if (!certMatches(cert, tls.match, { hostname: name, nexthop: tls.nexthop })) why = `certificate does not match ${tls.match.join(', ')}`;
    else matched = true;
  }
  const mustMatch = tls.level === 'verify' || tls.level === 'secure' || tls.level === 'dane';
  const trust = !present ? 'Anonymous' : matched ? 'Verified' : trusted ? 'Trusted' : 'Untrusted';
  const cipher = sock.getCipher();
  const cipherName = cipher.standardName ?? cipher.name;
  c.opts.logger?.info(formatTlsLine(trust, c.relay, sock.getProtocol() ?? 'TLS', cipherName, cipherBits(cipherName)));
  if (mustMatch && !matched) {
    c.opts.logger?.info(`certificate verification failed for ${c.relay}: ${why}`);
    sock.destroy();
    c.dead = true;
    const text = tls.because ? `Server certificate not verified (${tls.because})` : 'Server certificate not verified';
    throw new SessionError('tls', '4.7.5', text);
  }
  c.socket = sock;
  c.attach(sock);
  countTlsSession('out');
}
