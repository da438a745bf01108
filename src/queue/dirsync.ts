// Group commit for directory fsyncs. A rename is durable once its directory is fsync'd; one fsync
// covers every rename that finished before it started. So concurrent commits share fsyncs: a
// caller joins the next fsync to start (never one already running, which may have started before
// its rename). Nothing is ever skipped — each caller's promise resolves only after an fsync that
// began after the caller asked.

import { open, type FileHandle } from 'node:fs/promises';

export class DirSyncer {
  private inflight: Promise<void> | null = null;
  private waiting: Promise<void> | null = null;
  private handle: Promise<FileHandle> | null = null;
  /** Number of fsync calls made (for tests and benchmarks). */
  syncs = 0;

  constructor(readonly dir: string) {}

  sync(): Promise<void> {
    if (this.waiting) return this.waiting;
    if (!this.inflight) {
      this.inflight = this.run().finally(() => {
        this.inflight = null;
      });
      return this.inflight;
    }
    this.waiting = this.inflight
      .catch(() => undefined)
      .then(() => {
        this.waiting = null;
        return this.sync();
      });
    return this.waiting;
  }

  private async run(): Promise<void> {
    if (!this.handle) this.handle = open(this.dir, 'r');
    let fh: FileHandle;
    try {
      fh = await this.handle;
    } catch (err) {
      this.handle = null;
      throw err;
    }
    this.syncs++;
    await fh.sync();
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (h) await (await h.catch(() => null))?.close();
  }
}
