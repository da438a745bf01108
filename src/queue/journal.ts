// The state journal: per-recipient results and retry state are appended to the message's file as
// checksummed UPDATE records and fsync'd before the call resolves, so after a crash at most the
// in-flight deliveries repeat. A journal that grows long is compacted: the immutable part of the
// file plus one snapshot update, written aside in incoming/ and renamed over the original.
// Trusts the Queue to serialize operations on one message (one writer per file) and to pass an
// entry that is in its index; trusts nothing it reads back from disk (readQueueHeadSync checks).

import { openSync, closeSync, renameSync } from 'node:fs';
import { unlink, copyFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeUpdate, type QueueName, type RecipientStatus, type StateUpdate } from './file.js';
import { readQueueHeadSync } from './read.js';
import { STATUS_CHAR, QueueError, type QueueEntry } from './entry.js';
import { fsyncFd, type WriteFn } from './disk.js';

/** Result of one delivery attempt for some recipients. */
export type RecipientResult =
  | string
  | { reason: string; dsn?: string; remoteMta?: string; diagnosticCode?: string };

/** What the journal needs from the Queue that owns the files. */
export interface JournalStore {
  readonly dir: string;
  readonly write: WriteFn;
  /** Rewrite a file when its journal grows beyond this many bytes. */
  readonly compactThreshold: number;
  path(queue: QueueName, id: string): string;
  /** fsync a queue's directory (shared between concurrent callers). */
  syncDir(queue: QueueName): Promise<void>;
}

/** The UPDATE for a delivery result; EINVAL when an index names no recipient of `e`. */
export function recipientUpdate(e: QueueEntry, idx: number[], s: RecipientStatus, result: RecipientResult): StateUpdate {
  for (const i of idx) {
    if (!Number.isInteger(i) || i < 0 || i >= e.recipients.length) {
      throw new QueueError(`${e.id}: recipient index ${i} out of range (0..${e.recipients.length - 1})`, 'EINVAL');
    }
  }
  const r = typeof result === 'string' ? { reason: result } : result;
  const u: StateUpdate = { t: Date.now(), r: { i: idx, s, why: r.reason } };
  if (r.dsn !== undefined) u.r!.dsn = r.dsn;
  if (r.remoteMta !== undefined) u.r!.mta = r.remoteMta;
  if (r.diagnosticCode !== undefined) u.r!.diag = r.diagnosticCode;
  return u;
}

/**
 * Append `u` to the file, fsync it, then apply it to the entry (compacting when the journal is
 * long). `sync: false` skips the fsync — only for updates whose loss in a crash changes nothing
 * but when the message is tried next and the reason shown (a deferral, a recipient that stays
 * pending).
 */
export async function appendUpdate(store: JournalStore, e: QueueEntry, u: StateUpdate, opts: { sync?: boolean } = {}): Promise<void> {
  const rec = encodeUpdate(u);
  const fd = openSync(store.path(e.queue, e.id), 'r+');
  try {
    store.write(fd, [rec], e.fileSize);
    if (opts.sync !== false) await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
  e.fileSize += rec.length;
  if (u.r) {
    const c = STATUS_CHAR[u.r.s];
    const chars = e.status.split('');
    for (const i of u.r.i) chars[i] = c;
    e.status = chars.join('');
  }
  if (u.q) e.retry = { ...e.retry, ...u.q };
  if (e.fileSize - e.journalOffset > store.compactThreshold) await compact(store, e);
}

/** Rewrite a file whose journal grew long: the immutable part, then one snapshot update. */
async function compact(store: JournalStore, e: QueueEntry): Promise<void> {
  const path = store.path(e.queue, e.id);
  const h = readQueueHeadSync(path);
  const snap = encodeUpdate({ t: Date.now(), snap: { r: h.states, q: h.retry } });
  const tmp = join(store.dir, 'incoming', `${e.id}.compact`);
  try {
    await copyFile(path, tmp);
    await truncate(tmp, h.journalOffset);
    const fd = openSync(tmp, 'r+');
    try {
      store.write(fd, [snap], h.journalOffset);
      await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    await store.syncDir(e.queue);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  e.fileSize = h.journalOffset + snap.length;
  e.journalOffset = h.journalOffset;
}
