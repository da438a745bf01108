// The disk primitives the writer, the journal and recovery share: the positioned write (wrapped by
// tests to inject ENOSPC or EIO), the fsync that waits for the disk, and the synchronous fsyncs
// start-up recovery needs. Trusts the file system to report errors; hides none of them.
//
// Why synchronous opens, writes, closes and renames on the hot path: they only touch the page
// cache and take microseconds, while each asynchronous call is a round trip through libuv's
// thread pool (two thread wake-ups). Per message that was 0.7 ms of CPU at one session
// (bench/cpu-split.ts). Only fsync, which waits for the disk, goes to the thread pool.

import { openSync, fsync, fsyncSync, closeSync, truncateSync, writevSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';

/** The low-level write: all of `buffers` at `position` of `fd`. Tests wrap it to inject ENOSPC. */
export type WriteFn = (fd: number, buffers: Buffer[], position: number) => void;

export const writeAll: WriteFn = (fd, buffers, position) => {
  const total = buffers.reduce((n, b) => n + b.length, 0);
  const done = writevSync(fd, buffers, position);
  if (done < total) {
    const rest = Buffer.concat(buffers).subarray(done);
    let off = 0;
    while (off < rest.length) off += writeSync(fd, rest, off, rest.length - off, position + done + off);
  }
};

/** fsync `fd` in the thread pool: resolves when the file's data is on the disk. */
export const fsyncFd: (fd: number) => Promise<void> = promisify(fsync);

/** Close `fd`, ignoring errors (for clean-up after a failure). */
export function closeQuietly(fd: number | null): void {
  if (fd === null) return;
  try {
    closeSync(fd);
  } catch {
    /* already failing: the first error is the one reported */
  }
}

/** fsync a directory, so that the renames and unlinks in it survive a crash. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Cut a file to `length` and fsync it. */
export function truncateDurably(path: string, length: number): void {
  truncateSync(path, length);
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
