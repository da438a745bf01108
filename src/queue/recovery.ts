// Start-up recovery: rebuild the Queue's index from the heads of the files on disk. Files left in
// incoming/ never got a 250 and are removed; a file that cannot be parsed, has a bogus name or a
// duplicate ID is moved to corrupt/ (never deleted: an administrator may want it); a torn last
// state update is cut off. Without `recover` (a read-only look) nothing on disk changes.
// Trusts nothing it reads from disk; trusts the caller to hold the queue lock when recovering.

import { readdirSync, renameSync, unlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MESSAGE_QUEUES, QueueFileError, type QueueName } from './file.js';
import { readQueueHeadSync } from './read.js';
import { isValidQueueId } from './id.js';
import { fsyncDir, truncateDurably } from './disk.js';
import { STATUS_CHAR, type QueueEntry } from './entry.js';
import { processAlive } from './lock.js';
import { logCorrupt, logIncomingRemoved, logTornUpdate } from './log.js';
import type { Logger } from '../log/index.js';

export interface RecoveryReport {
  /** Files removed from incoming/ (never answered with 250). */
  removedIncoming: string[];
  /** Messages found in active/: they go back to the scheduler. */
  active: string[];
  /** Files moved to corrupt/ during this start-up. */
  corrupt: string[];
  /** Messages whose torn last state update was dropped. */
  torn: string[];
  /** Messages in the index after recovery. */
  messages: number;
  elapsedMs: number;
}

/** Scan the queue folders under `dir` into `index` (empty on entry); log as qmgr. */
export async function recoverQueue(dir: string, index: Map<string, QueueEntry>, recover: boolean, qmgr: Logger): Promise<RecoveryReport> {
  const t0 = Date.now();
  const report: RecoveryReport = { removedIncoming: [], active: [], corrupt: [], torn: [], messages: 0, elapsedMs: 0 };
  if (recover) removeIncoming(join(dir, 'incoming'), report, qmgr);
  let n = 0;
  for (const queue of MESSAGE_QUEUES) {
    const qdir = join(dir, queue);
    let movedAny = false;
    for (const name of readdirSync(qdir)) {
      if (++n % 2000 === 0) await new Promise((r) => setImmediate(r));
      const path = join(qdir, name);
      let reason: string | null = null;
      if (!isValidQueueId(name)) reason = 'bogus file name';
      else if (index.has(name)) {
        const other = index.get(name)!;
        if (sameFile(path, join(dir, other.queue, name))) {
          // One file under two names (a crash between a rename and its fsyncs): keep one.
          if (recover) unlinkSync(path);
          continue;
        }
        reason = `duplicate queue ID (also in ${other.queue}/)`;
      }
      if (!reason) {
        try {
          const entry = readEntry(path, queue, name, recover, report, qmgr);
          index.set(name, entry);
          if (queue === 'active') report.active.push(name);
          continue;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          // A stray directory under a queue-ID name is not a message either; not fatal.
          if (!(err instanceof QueueFileError) && (err as NodeJS.ErrnoException).code !== 'EISDIR') throw err;
          reason = (err as Error).message;
        }
      }
      if (recover && reason) {
        const dest = uniqueCorruptName(dir, name);
        renameSync(path, join(dir, 'corrupt', dest));
        logCorrupt(qmgr, queue, name, reason);
        report.corrupt.push(dest);
        movedAny = true;
      }
    }
    if (movedAny) fsyncDir(qdir);
  }
  if (report.corrupt.length) fsyncDir(join(dir, 'corrupt'));
  report.messages = index.size;
  report.elapsedMs = Date.now() - t0;
  return report;
}

function removeIncoming(incoming: string, report: RecoveryReport, qmgr: Logger): void {
  for (const name of readdirSync(incoming)) {
    // `t<pid>.<n>` is a message another live process (an smtpd worker) is still writing: its
    // client has not had a 250, and the writer commits or removes it itself.
    const writer = /^t(\d+)\./.exec(name);
    if (writer && Number(writer[1]) !== process.pid && processAlive(Number(writer[1]))) continue;
    try {
      unlinkSync(join(incoming, name));
      report.removedIncoming.push(name);
      // A compaction temp file never replaced anything: the original is still in its queue.
      if (!name.endsWith('.compact')) logIncomingRemoved(qmgr, name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  if (report.removedIncoming.length) fsyncDir(incoming);
}

/** One file's index entry from its head; a torn last update is reported (and cut off when recovering). */
function readEntry(path: string, queue: QueueName, id: string, recover: boolean, report: RecoveryReport, qmgr: Logger): QueueEntry {
  const h = readQueueHeadSync(path);
  if (h.torn) {
    report.torn.push(id);
    logTornUpdate(qmgr, queue, id, h.validLength);
    if (recover) truncateDurably(path, h.validLength);
  }
  return {
    id,
    queue,
    arrivalTime: h.envelope.arrivalTime,
    messageSize: h.messageSize,
    sender: h.envelope.sender,
    recipients: h.envelope.recipients.map((r) => r.address),
    status: h.states.map((s) => STATUS_CHAR[s.status]).join(''),
    retry: h.retry,
    fileSize: h.validLength,
    journalOffset: h.journalOffset,
  };
}

function sameFile(a: string, b: string): boolean {
  try {
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.ino === sb.ino && sa.dev === sb.dev;
  } catch {
    return false;
  }
}

function uniqueCorruptName(dir: string, name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_.-]/g, '_') || 'unnamed';
  let candidate = safe;
  for (let i = 1; ; i++) {
    try {
      statSync(join(dir, 'corrupt', candidate));
    } catch {
      return candidate;
    }
    candidate = `${safe}.${i}`;
  }
}

/**
 * A writer process died (an smtpd worker killed): its half-written files in incoming/
 * (`t<pid>.*`, never answered 250) go now rather than at the next start, logged as recovery logs
 * them.
 */
export function removeWriterFiles(queueDirectory: string, pid: number, qmgr: Logger): void {
  const incoming = join(queueDirectory, 'incoming');
  let names: string[];
  try {
    names = readdirSync(incoming);
  } catch {
    return; // no queue directory (yet): nothing of it left behind
  }
  for (const name of names) {
    const writer = /^t(\d+)\./.exec(name);
    if (!writer || Number(writer[1]) !== pid) continue;
    try {
      unlinkSync(join(incoming, name));
      logIncomingRemoved(qmgr, name);
    } catch {
      /* already gone */
    }
  }
}

