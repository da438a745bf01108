// Queue IDs in Postfix's short format: the microseconds of the current second as five hex digits,
// then the queue file's inode number in hex (Postfix's get_file_id()), e.g. "0B92E5104E3".
// Unique among live files because no two live files share an inode; the caller still checks its
// index, because a compacted file gets a new inode and its old one may come back.

import { performance } from 'node:perf_hooks';

/** Postfix's mail_queue_id_ok(): letters, digits and '_', at most 100 characters. */
export function isValidQueueId(id: string): boolean {
  return /^[A-Za-z0-9_]{1,100}$/.test(id);
}

/** Microseconds within the current second, 0..999999. */
export function microseconds(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000) % 1_000_000;
}

export function makeQueueId(inode: number | bigint, usec = microseconds()): string {
  return usec.toString(16).toUpperCase().padStart(5, '0') + inode.toString(16).toUpperCase();
}
