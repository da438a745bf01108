// smtpd's outward contracts: where accepted mail goes (MessageSink, implemented by the queue), how
// the client's name is found (ClientNameLookup, implemented by dns), and whom ETRN asks to deliver
// (Flusher, implemented by qmgr). smtpd declares them as their consumer, so it imports neither
// side. Trusts nothing here; these are interfaces only.

import type { Envelope } from '../mail/index.js';

/**
 * The queue as smtpd sees it: a transaction per message (maddy's delivery target; the file
 * store implements it today, a replicated store can tomorrow). `begin` reserves the queue id at
 * once, so the Received: header can name it (Postfix writes `with ESMTP id QUEUEID`); it throws
 * an SmtpError (451 4.3.0) when the queue cannot take mail.
 */
export interface MessageSink {
  begin(envelope: Envelope): MessageTransaction;
}

/**
 * One message on its way in. `write` streams the content and rejects with an SmtpError (552 5.3.4
 * too big, 452 4.3.1 disk full, 451 4.3.0 otherwise, or the error the content stream was destroyed
 * with); `commit` resolves with the id only once the message is durable (file and directory
 * fsync'd) in the queue chosen now — after the end-of-data restrictions (HOLD → 'hold');
 * `abort` keeps nothing (a refusal, a lost client, DISCARD) and may be called more than once.
 */
export interface MessageTransaction {
  readonly id: string;
  write(content: AsyncIterable<Buffer | string>): Promise<void>;
  commit(opts?: { queue?: 'hold' }): Promise<string>;
  abort(): Promise<void>;
}

/** The client name lookup (dns module's Resolver.clientName). */
export interface ClientNameLookup {
  clientName(ip: string): Promise<{ name: string; reverseName: string; temporary?: boolean }>;
}

/**
 * Fast flush as ETRN needs it (the queue manager implements it; smtpd declares only what it
 * calls, so it never imports qmgr). false: the domain is not eligible.
 */
export interface Flusher {
  flushDomain(domain: string): Promise<boolean>;
}

/** The limits anvil applies to one new connection (0 = no limit). */
export interface ConnectionLimits {
  count: number;
  rate: number;
  unitSeconds: number;
  exempt: boolean;
}

export type AnvilVerdict = { ok: true; count: number; rate: number } | { ok: false; reason: 'count' | 'rate'; count: number; rate: number };

/**
 * Per-client connection accounting (Postfix's anvil(8)): the in-process Anvil for one smtpd, or,
 * with several smtpd worker processes, the master's one anvil reached over IPC, so the limits
 * count every connection of a client whichever worker took it.
 */
export interface ConnectionCounter {
  connect(ip: string, limits: ConnectionLimits): AnvilVerdict | Promise<AnvilVerdict>;
  disconnect(ip: string): void;
}
