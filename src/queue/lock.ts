// The queue lock: one process at a time changes queue files directly. The running server holds it
// for its whole life; postsuper takes it only when no server answers on the control socket. The
// lock is a file created with O_EXCL holding the owner's PID; a lock whose owner is dead is stale
// and is taken over. Trusts the PID in the file only as far as kill(pid, 0) confirms it.

import { writeFile, readFile, unlink, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

export class QueueLockedError extends Error {
  constructor(readonly pid: number, readonly path: string) {
    super(`queue is locked by process ${pid} (${path})`);
    this.name = 'QueueLockedError';
  }
}

export interface QueueLock {
  path: string;
  release(): Promise<void>;
}

function lockPath(queueDirectory: string): string {
  return join(queueDirectory, 'pid', 'queue.lock');
}

/** True when a process with this pid exists (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the lock, waiting up to `waitMs` for a live owner to let go. */
export async function acquireQueueLock(queueDirectory: string, opts: { waitMs?: number } = {}): Promise<QueueLock> {
  const path = lockPath(queueDirectory);
  await mkdir(join(queueDirectory, 'pid'), { recursive: true });
  const deadline = Date.now() + (opts.waitMs ?? 0);
  for (;;) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx' });
      let released = false;
      return {
        path,
        async release() {
          if (released) return;
          released = true;
          await unlink(path).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const text = await readFile(path, 'utf8').catch(() => '');
    const pid = Number.parseInt(text, 10);
    if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) {
      // Stale (owner died) or half-written: take it over.
      await unlink(path).catch(() => undefined);
      continue;
    }
    if (Date.now() >= deadline) throw new QueueLockedError(pid, path);
    await new Promise((r) => setTimeout(r, 50));
  }
}
