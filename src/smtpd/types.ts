// smtpd's outward contracts: where accepted mail goes (MessageSink, implemented by the queue), how
// the client's name is found (ClientNameLookup, implemented by dns), and whom ETRN asks to deliver
// (Flusher, implemented by qmgr). smtpd declares them as their consumer, so it imports neither
// side. Trusts nothing here; these are interfaces only.

import type { Readable } from 'node:stream';
import type { Envelope } from '../mail/index.js';

/**
 * The queue as smtpd sees it. `accept` resolves with the queue id only after the message and its
 * envelope are durably on disk (fsync), and throws an SmtpError (e.g. 452 4.3.1) when it cannot
 * take the message. An error raised by the content stream (smtpd destroys it when the message
 * grows past message_size_limit or must be rejected at end of data) must make `accept` reject
 * without leaving a queue file behind.
 */
export interface MessageSink {
  accept(envelope: Envelope, content: Readable | AsyncIterable<Buffer>, opts?: AcceptOptions): Promise<string>;
  /**
   * Optional: reserve a queue id before the content is written, so that the Received: header can
   * name it (Postfix writes `with ESMTP id QUEUEID`). When present, smtpd passes the reserved id
   * back to `accept` in `opts.queueId`.
   */
  newId?(): string;
}

/**
 * `queue` and `discard` are read when the message is committed (after end of data), so verdicts
 * of the end-of-data restrictions still count: HOLD → the hold queue, DISCARD → nothing kept.
 */
export interface AcceptOptions {
  queueId?: string;
  queue?: 'hold';
  discard?: boolean;
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
