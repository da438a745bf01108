// The start of an outbound session, as smtp(8) runs it: the 220 greeting, EHLO (HELO when EHLO
// gets a 5xx) with the peer's features, and STARTTLS per the session's TLS (tls-session.ts) —
// "may" carries on in plain text when TLS is not offered or refused, every stronger level
// requires it and defers otherwise (never plain text); starttls.ts judges the certificate.
// Trusts nothing the peer says about itself.

import { SessionError, type Conn } from './conn.js';
import type { SessionOptions, SessionTls } from './options.js';
import { startTls } from './starttls.js';

export interface Features {
  esmtp: boolean;
  pipelining: boolean;
  /** SIZE limit announced (0: none or unlimited). */
  size: number | undefined;
  dsn: boolean;
  smtputf8: boolean;
  eightBitMime: boolean;
  starttls: boolean;
  /** Attributes announced with XFORWARD / XCLIENT (empty: not offered). */
  xforward: string[];
  xclient: string[];
}

/** What a peer that said HELO (or nothing yet) supports. */
export function noFeatures(): Features {
  return { esmtp: false, pipelining: false, size: undefined, dsn: false, smtputf8: false, eightBitMime: false, starttls: false, xforward: [], xclient: [] };
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
  const tls = sessionTls(c.opts);
  const level = tls.level;
  if (level === 'none') return;
  if (!state.features.starttls) {
    if (level === 'may') return;
    throw new SessionError('tls', '4.7.4', `TLS is required, but was not offered by host ${c.host}`);
  }
  c.write('STARTTLS\r\n', 'performing the STARTTLS handshake');
  const r = await c.read(c.t.smtp_helo_timeout, 'sending STARTTLS');
  if (r.code !== 220) {
    if (level === 'may') return; // opportunistic: carry on in plain text
    throw new SessionError('tls', r.code >= 500 ? '4.7.5' : r.dsn, `TLS is required, but host ${c.host} refused to start TLS: ${r.text}`, r);
  }
  await startTls(c, tls);
  state.secure = true;
  state.features = await hello(c);
}

/** The session's TLS: resolved by tls-session.ts, or the bare tlsLevel (none when absent). */
export function sessionTls(opts: SessionOptions): SessionTls {
  if (opts.tls) return opts.tls;
  const level = opts.tlsLevel ?? 'none';
  return { level, match: ['hostname'], nexthop: '', protocols: '>=TLSv1' };
}

/** EHLO, or HELO when EHLO gets a 5xx; returns the features the peer announced. */
export async function hello(c: Conn, heloName = c.opts.heloName): Promise<Features> {
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
    else if (kw === 'XFORWARD') f.xforward = words.slice(1).map((w) => w.toUpperCase());
    else if (kw === 'XCLIENT') f.xclient = words.slice(1).map((w) => w.toUpperCase());
    else if (kw === 'SIZE') {
      const n = Number(words[1]);
      f.size = Number.isFinite(n) && n > 0 ? n : 0;
    }
  }
  return f;
}
