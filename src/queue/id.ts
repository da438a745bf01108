// Queue IDs in Postfix's short format: the microseconds of the current second as five hex digits,
// then a number in hex — in Postfix the queue file's inode (get_file_id()), e.g. "0B92E5104E3".
// The Queue reserves an id before its file exists (begin(), so the Received: header can name it),
// so it passes a per-process sequence number instead and checks its index and reservations for
// uniqueness. Trusts nothing; only formats and checks the shape.

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
