// Renames and unlinks of queue files, off the event loop and in batches. A queue manager moves
// and removes a file per delivered message. Done synchronously, each costs the event loop the
// system call and, worse, a wait for the file system's journal while fsyncs (of the smtpd
// workers' commits) are committing it. Done with fs.promises, each is its own round trip through
// libuv's thread pool: two thread wake-ups per call, which in this VM cost more than the
// rename itself (perf: futex wake-ups under uv__work_submit, bench/qmgr-drain.ts). Here the
// operations of one event-loop turn go to one helper thread as one message; it runs them with
// the synchronous calls, in order, and answers with one message. Written by hand because no
// library batches file-system calls into a thread: the worker is twenty lines of fs calls.
// Trusts its callers for the paths; every error comes back as the usual fs error (code, path).

import { Worker } from 'node:worker_threads';

/**
 * The helper thread: runs each batch in order and answers with one result per operation: null,
 * the first bytes of a file it moved and read ({ data }, the buffer transferred), or an error.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
parentPort.on('message', (batch) => {
  const out = [];
  const transfer = [];
  for (const op of batch) {
    try {
      if (op[0] === 'u') fs.unlinkSync(op[1]);
      else fs.renameSync(op[1], op[2]);
      // Recycled (recycle.ts): a large file is emptied once out of its queue; a writer that took
      // it first empties it itself.
      if (op[0] === 'c' && op[3]) try { fs.truncateSync(op[2], 0); } catch {}
    } catch (e) {
      out.push({ message: e.message, code: e.code, errno: e.errno, syscall: e.syscall, path: e.path, dest: e.dest });
      continue;
    }
    if (op[0] !== 'm') {
      out.push(null);
      continue;
    }
    // The move is done; a failed read only means the caller reads the file itself.
    let fd = -1;
    try {
      fd = fs.openSync(op[2], 'r');
      const buf = Buffer.allocUnsafeSlow(op[3]);
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      out.push({ data: buf, length: n });
      transfer.push(buf.buffer);
    } catch {
      out.push(null);
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }
  parentPort.postMessage(out, transfer);
});
`;

type Op = ['r', string, string] | ['u', string] | ['m', string, string, number] | ['c', string, string, boolean];
interface Waiter {
  resolve: (data?: Buffer) => void;
  reject: (err: Error) => void;
}
interface FsErrorFields {
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
  dest?: string;
}

export class FileOps {
  private worker: Worker | null = null;
  private queued: Op[] = [];
  private queuedWaiters: Waiter[] = [];
  /** Waiters of the batches sent, oldest first (the thread answers in order). */
  private readonly inFlight: Waiter[][] = [];
  private idleWaiters: Array<() => void> = [];
  private flushScheduled = false;
  private closed = false;

  rename(from: string, to: string): Promise<void> {
    return this.add(['r', from, to]).then(() => undefined);
  }

  /**
   * Rename, then read the first `bytes` bytes of the file under its new name, in the same trip:
   * the queue manager reads every message it moves to active/. Resolves with what was read
   * (shorter than `bytes` when the file is), or undefined when the read failed after the move.
   */
  renameAndRead(from: string, to: string, bytes: number): Promise<Buffer | undefined> {
    return this.add(['m', from, to, bytes]);
  }

  unlink(path: string): Promise<void> {
    return this.add(['u', path]).then(() => undefined);
  }

  /** Rename `from` to `to` in recycle/, then empty it there if `empty` (a removal that keeps the inode). */
  recycle(from: string, to: string, empty: boolean): Promise<void> {
    return this.add(['c', from, to, empty]).then(() => undefined);
  }

  /** Waits for the operations sent, then stops the thread. Later calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.queued.length) this.flush();
    if (this.inFlight.length) await new Promise<void>((r) => this.idleWaiters.push(r));
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }

  private add(op: Op): Promise<Buffer | undefined> {
    if (this.closed) return Promise.reject(new Error('queue file operations are closed'));
    return new Promise<Buffer | undefined>((resolve, reject) => {
      this.queued.push(op);
      this.queuedWaiters.push({ resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    if (!this.queued.length) return;
    const w = this.thread();
    this.inFlight.push(this.queuedWaiters);
    w.postMessage(this.queued);
    this.queued = [];
    this.queuedWaiters = [];
    // Keeps the process alive while operations are outstanding (a command's last removal).
    w.ref();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_SOURCE, { eval: true, stdout: false, stderr: false });
    w.on('message', (out: Array<FsErrorFields | { data: Uint8Array; length: number } | null>) => {
      // A thread already given up for dead (see 'exit') answers nothing any more.
      if (this.worker !== w) return;
      const waiters = this.inFlight.shift() ?? [];
      for (let i = 0; i < waiters.length; i++) {
        const r = out[i];
        if (!r) waiters[i].resolve();
        else if ('data' in r) waiters[i].resolve(Buffer.from(r.data.buffer, r.data.byteOffset, r.length));
        else waiters[i].reject(fsError(r));
      }
      if (!this.inFlight.length) this.idle(w);
    });
    w.on('error', (err) => {
      if (this.worker !== w) return;
      this.worker = null;
      this.failAll(err);
    });
    w.on('exit', () => {
      if (this.worker !== w) return;
      this.worker = null;
      this.failAll(new Error('queue file operations thread exited'));
    });
    w.unref();
    this.worker = w;
    return w;
  }

  private idle(w: Worker): void {
    w.unref();
    for (const r of this.idleWaiters.splice(0)) r();
  }

  /** The thread died: what it held is unknown, so each waiting call fails (the caller retries or reports). */
  private failAll(err: Error): void {
    for (const batch of this.inFlight.splice(0)) for (const waiter of batch) waiter.reject(err);
    for (const r of this.idleWaiters.splice(0)) r();
  }
}

function fsError(f: FsErrorFields): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException & { dest?: string } = new Error(f.message);
  if (f.code !== undefined) err.code = f.code;
  if (f.errno !== undefined) err.errno = f.errno;
  if (f.syscall !== undefined) err.syscall = f.syscall;
  if (f.path !== undefined) err.path = f.path;
  if (f.dest !== undefined) err.dest = f.dest;
  return err;
}
