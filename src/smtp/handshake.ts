// The start of an outbound session, as smtp(8) runs it: the 220 greeting, EHLO (HELO when EHLO
// gets a 5xx) with the peer's features, and STARTTLS per smtp_tls_security_level — "may" carries
// on in plain text when TLS is not offered or refused, "encrypt" requires it, "verify"/"secure"
// also require a certificate that a CA vouches for and that names the MX host. Trusts the CA
// file for the certificate check and nothing the peer says about itself.

import { connect as tlsConnect, checkServerIdentity, type TLSSocket, type PeerCertificate } from 'node:tls';
import { SessionError, type Conn } from './conn.js';
import { formatTlsLine } from './log.js';
import { tlsSessions } from '../observe/index.js';
import type { TlsLevel } from './options.js';

export interface Features {
  esmtp: boolean;
  pipelining: boolean;
  /** SIZE limit announced (0: none or unlimited). */
  size: number | undefined;
  dsn: boolean;
  smtputf8: boolean;
  eightBitMime: boolean;
  starttls: boolean;
}

/** What a peer that said HELO (or nothing yet) supports. */
export function noFeatures(): Features {
  return { esmtp: false, pipelining: false, size: undefined, dsn: false, smtputf8: false, eightBitMime: false, starttls: false };
}

/** What the session knows after its handshake. */
export interface HandshakeState {
  features: Features;
  secure: boolean;
}

/** Greeting, EHLO/HELO and STARTTLS; updates `state` as it goes. Throws SessionError. */
export async function handshake(c: Conn, state: HandshakeState): Promise<void> {
  const greeting = await c.read(c.t.smtp_helo_timeout, 'receiving the initial server greeting');
  if (greeting.code !== 220) {
    // Postfix: a 4xx or 5xx greeting makes it try the next MX host (the text says so).
    throw new SessionError('greeting', greeting.dsn, `host ${c.host} refused to talk to me: ${greeting.text}`, greeting);
  }
  state.features = await hello(c);
  const level = c.opts.tlsLevel ?? 'none';
  if (level === 'none') return;
  if (!state.features.starttls) {
    if (level === 'may') return;
    throw new SessionError('tls', '4.7.4', `TLS is required, but was not offered by host ${c.host}`);
  }
  c.write('STARTTLS\r\n', 'performing the STARTTLS handshake');
  const r = await c.read(c.t.smtp_helo_timeout, 'sending STARTTLS');
  if (r.code !== 220) {
    if (level === 'may') return; // opportunistic: carry on in plain text
    throw new SessionError('tls', r.code >= 500 ? '4.7.5' : r.dsn, c.said(r, 'STARTTLS'), r);
  }
  await startTls(c, level);
  state.secure = true;
  state.features = await hello(c);
}

/** EHLO, or HELO when EHLO gets a 5xx; returns the features the peer announced. */
async function hello(c: Conn): Promise<Features> {
  const heloName = c.opts.heloName;
  c.write(`EHLO ${heloName}\r\n`, 'performing the EHLO handshake');
  let r = await c.read(c.t.smtp_helo_timeout, 'performing the EHLO handshake');
  if (r.code >= 500) {
    c.write(`HELO ${heloName}\r\n`, 'performing the HELO handshake');
    r = await c.read(c.t.smtp_helo_timeout, 'performing the HELO handshake');
    if (r.code !== 250) throw new SessionError('reply', r.dsn, c.said(r, 'HELO'), r);
    return noFeatures();
  }
  if (r.code !== 250) throw new SessionError('reply', r.dsn, c.said(r, 'EHLO'), r);
  const f: Features = { ...noFeatures(), esmtp: true };
  // The first line is the greeting name; each further line is a keyword with parameters.
  const lines = r.lines.slice(1);
  for (const line of lines) {
    const words = line.slice(4).trim().split(/\s+/);
    const kw = (words[0] ?? '').toUpperCase();
    if (kw === 'PIPELINING') f.pipelining = true;
    else if (kw === 'DSN') f.dsn = true;
    else if (kw === 'SMTPUTF8') f.smtputf8 = true;
    else if (kw === '8BITMIME') f.eightBitMime = true;
    else if (kw === 'STARTTLS') f.starttls = true;
    else if (kw === 'SIZE') {
      const n = Number(words[1]);
      f.size = Number.isFinite(n) && n > 0 ? n : 0;
    }
  }
  return f;
}

/** The TLS handshake over the connection's socket, which it then replaces; logs Postfix's TLS line. */
async function startTls(c: Conn, level: TlsLevel): Promise<void> {
  const verify = level === 'verify' || level === 'secure';
  const name = c.address.name;
  const servername = /^[\d.]+$|:/.test(name) ? undefined : name;
  const plain = c.socket;
  plain.removeAllListeners('data');
  plain.removeAllListeners('close');
  c.reader.reset();
  const tls = await new Promise<TLSSocket>((resolve, reject) => {
    const s = tlsConnect({
      socket: plain,
      servername,
      ca: c.opts.tlsCa,
      rejectUnauthorized: false,
      // The name check is ours (below), against the MX host name; Node's default would
      // check "localhost" when there is no SNI name and fold that into `authorized`.
      checkServerIdentity: () => undefined,
      minVersion: 'TLSv1',
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
      reject(new SessionError('tls', '4.7.5', `TLS handshake failed with ${c.host}: ${err.message}`));
    });
  }).catch((err) => {
    c.dead = true;
    plain.destroy();
    throw err;
  });
  let trust: 'Verified' | 'Trusted' | 'Untrusted' = 'Untrusted';
  const cert = tls.getPeerCertificate() as PeerCertificate;
  if (tls.authorized) {
    // smtp_tls_verify_cert_match = hostname: the MX host name must match the certificate.
    const mismatch = checkServerIdentity(name, cert);
    trust = mismatch ? 'Trusted' : 'Verified';
  }
  if (verify && trust !== 'Verified') {
    tls.destroy();
    c.dead = true;
    const why = tls.authorized ? 'hostname mismatch' : `untrusted issuer: ${tls.authorizationError ?? 'unknown'}`;
    throw new SessionError('tls', '4.7.5', `Server certificate not verified (${why}) for ${c.host}`);
  }
  c.socket = tls;
  c.attach(tls);
  const cipher = tls.getCipher();
  tlsSessions.inc({ direction: 'out' });
  c.opts.logger?.info(formatTlsLine(trust, c.relay, tls.getProtocol() ?? 'TLS', cipher.standardName ?? cipher.name));
}
