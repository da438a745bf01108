// Queue IDs in Postfix's short format: the microseconds of the current second as five hex digits,
// then a number in hex — in Postfix the queue file's inode (get_file_id()), e.g. "0B92E5104E3".
// A transaction reserves its id before its file exists (begin(), so the Received: header can name
// it), so the number is a sequence instead (QueueIds), checked against the live messages and the
// other reservations of its process. Several processes write one queue (the queue manager and
// each smtpd worker): each numbers from its own range (`slot`), so their ids never meet.
// Trusts the caller's `live` test for the messages in its index.

import { performance } from 'node:perf_hooks';

/** Postfix's mail_queue_id_ok(): letters, digits and '_', at most 100 characters. */
export function isValidQueueId(id: string): boolean {
  return /^[A-Za-z0-9_]{1,100}$/.test(id);
}

/** Microseconds within the current second, 0..999999. */
function microseconds(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000) % 1_000_000;
}

export function makeQueueId(n: number | bigint, usec = microseconds()): string {
  return usec.toString(16).toUpperCase().padStart(5, '0') + n.toString(16).toUpperCase();
}

/** Ids handed out before their files exist: unique among live messages and other reservations. */
export class QueueIds {
  private seq = Math.floor(Math.random() * 0x1000000);
  private readonly reserved = new Set<string>();

  /** slot: 0 for the queue manager's process, 1..N for the smtpd workers (their own id ranges). */
  constructor(private readonly live: (id: string) => boolean, private readonly slot = 0) {}

  reserve(): string {
    let id: string;
    do {
      this.seq = (this.seq + 1) % 0x10000000;
      id = makeQueueId(this.slot * 0x10000000 + this.seq);
    } while (this.live(id) || this.reserved.has(id));
    this.reserved.add(id);
    return id;
  }

  isReserved(id: string): boolean {
    return this.reserved.has(id);
  }

  /** The id is committed (now live) or dropped: it is no longer a reservation. */
  release(id: string): void {
    this.reserved.delete(id);
  }
}
