// What the Queue's in-memory index keeps per message (no content, no envelope beyond the sender
// and the recipient addresses), the events it announces about them, and the error for an
// operation on a message that is not there or an argument that cannot apply. Shared by the writer (which adds entries), the journal (which
// changes them), recovery (which rebuilds them from disk) and the Queue. Trusts nothing; holds data.

import type { QueueName, RecipientStatus, RetryState } from './file.js';

export interface QueueEntry {
  readonly id: string;
  queue: QueueName;
  arrivalTime: number;
  messageSize: number;
  sender: string;
  recipients: string[];
  /** One character per recipient: P pending, D delivered, B bounced. */
  status: string;
  retry: RetryState;
  fileSize: number;
  journalOffset: number;
}

export interface QueueEvents {
  /** A message was committed (its 250 may now be sent). */
  accepted: [id: string, entry: QueueEntry];
  /** A message moved between queues. */
  moved: [id: string, from: QueueName, to: QueueName];
  /** Recipient or retry state changed. */
  updated: [id: string, entry: QueueEntry];
  /** A message left the queue. */
  removed: [id: string, from: QueueName];
}

/** The index's one-character form of a recipient status. */
export const STATUS_CHAR: Record<RecipientStatus, string> = { pending: 'P', delivered: 'D', bounced: 'B' };

export class QueueError extends Error {
  constructor(message: string, readonly code: 'ENOENT' | 'EINVAL') {
    super(message);
    this.name = 'QueueError';
  }
}
