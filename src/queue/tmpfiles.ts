// Spare temporary files for the queue writer: a few empty files in incoming/, created ahead of
// need in libuv's thread pool, so that a new message starts writing at once. Creating a file takes
// a handle on the file system's journal, and while other processes' fsyncs commit that journal it
// waits — measured up to a millisecond and more per create (bench/qmgr-drain.ts's accept phase:
// 0.9 ms per openSync at 50 sessions), time during which a synchronous create would stall every
// session of the process, and an asynchronous one would add a thread-pool round trip to each
// message. A spare is named `s<pid>.<n>`: start-up recovery leaves those of live processes alone
// and removes the others silently (they never held content). Trusts the directory to be the
// queue's incoming/, on the same file system as the queues the writer renames into.

import { open as openCb, closeSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const openFd: (path: string, flags: string, mode: number) => Promise<number> = promisify(openCb);

export interface TmpFile {
  path: string;
  fd: number;
}

/** A spare's name: `s<pid>.<n>` (see start-up recovery). */
export const SPARE_NAME = /^s(\d+)\.\d+$/;

export class TmpFiles {
  private readonly ready: TmpFile[] = [];
  private creating = 0;
  private counter = 0;
  private closed = false;

  /** `spares`: files kept ready (0: create each file when it is needed). */
  constructor(
    private readonly dir: string,
    private readonly spares = 4,
  ) {}

  /** An empty file open for writing: a spare when one is ready, else created now. */
  async take(): Promise<TmpFile> {
    const f = this.ready.pop();
    this.refill();
    return f ?? this.create();
  }

  /** Remove the spares (the queue is closing). */
  close(): void {
    this.closed = true;
    for (const f of this.ready.splice(0)) discard(f);
  }

  private refill(): void {
    while (!this.closed && this.ready.length + this.creating < this.spares) {
      this.creating++;
      this.create().then(
        (f) => {
          this.creating--;
          if (this.closed) discard(f);
          else this.ready.push(f);
        },
        () => {
          // Disk full or unwritable: no spare now; take() creates (and reports) when needed.
          this.creating--;
        },
      );
    }
  }

  private async create(): Promise<TmpFile> {
    const path = join(this.dir, `s${process.pid}.${++this.counter}`);
    return { path, fd: await openFd(path, 'wx', 0o600) };
  }
}

function discard(f: TmpFile): void {
  try {
    closeSync(f.fd);
    unlinkSync(f.path);
  } catch {
    /* already gone */
  }
}
