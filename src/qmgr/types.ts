// The queue manager's contracts with the bounce service: what it asks for (build a failure or
// delay notice; it queues the result through the queue's transaction itself). Its callers —
// smtpd's ETRN, the control socket — declare what they call of it (Flusher, ControlHandlers).
import type { Envelope, EnvelopeRecipient } from '../mail/index.js';

/** One recipient in a notice, with the last delivery result for it. */
export interface NoticeRecipient extends EnvelopeRecipient {
  /** RFC 3463 status, e.g. "5.1.1" (failed) or "4.4.1" (delayed or expired). */
  dsn: string;
  /** Postfix's delivery text ("host X said: ...", "connect to ...: Connection refused"). */
  text: string;
  remoteMta?: string;
  /** The remote reply for Diagnostic-Code: smtp; ... */
  diagnostic?: string;
}

export interface NoticeRequest {
  kind: 'failure' | 'delay';
  queueId: string;
  /** The original message's envelope. */
  envelope: Envelope;
  recipients: NoticeRecipient[];
  /** The original content (CRLF), for the headers or the full message per RET. */
  content: () => AsyncIterable<Buffer>;
  /** For delay notices: when the message will be given up (ms since the epoch). */
  willRetryUntil?: number;
}

/** A notice ready to queue. */
export interface Notice {
  envelope: Envelope;
  content: Buffer;
}

/**
 * Builds DSNs. Returns null when no notice may be sent (NOTIFY=NEVER, a double bounce that must
 * be discarded, ...). The builder decides the notice's recipient (never the null sender; a
 * bounce of null-sender mail goes to 2bounce_notice_recipient).
 */
export interface NoticeBuilder {
  build(req: NoticeRequest): Promise<Notice | null>;
}

export interface QmgrStats {
  /** Messages the queue manager holds in memory as active (being delivered). */
  active: number;
  /** Jobs waiting for a delivery slot. */
  ready: number;
  /** Deliveries in flight. */
  inflight: number;
  delivered: number;
  bounced: number;
  deferred: number;
  removed: number;
  destinations: Array<{ key: string; window: number; inflight: number; ready: number; dead: boolean; deferred: number; peak: number }>;
}

/**
 * Connection slots per next hop shared beyond this queue manager (several nodes on one queue,
 * docs/cluster.md): a delivery holds one while it may open a connection to `nexthop`. Without
 * it, only this queue manager's own per-destination window limits connections.
 */
export interface ConnectionSlots {
  /** A slot for one connection to `nexthop` (at most `limit` at once): its release, or null when none is free now (try later). */
  tryAcquire(nexthop: string, limit: number): Promise<(() => void) | null>;
}
