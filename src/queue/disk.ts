// The disk primitives the writer, the journal and recovery share: the positioned write (wrapped by
// tests to inject ENOSPC or EIO) and the synchronous fsyncs start-up recovery needs. Trusts the
// file system to report errors; hides none of them.

import { openSync, fsyncSync, closeSync, truncateSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/** The low-level write: all of `buffers` at `position`. Tests wrap it to inject ENOSPC. */
export type WriteFn = (fh: FileHandle, buffers: Buffer[], position: number) => Promise<void>;

export const writeAll: WriteFn = async (fh, buffers, position) => {
  const total = buffers.reduce((n, b) => n + b.length, 0);
  let done = (await fh.writev(buffers, position)).bytesWritten;
  if (done < total) {
    const rest = Buffer.concat(buffers).subarray(done);
    let off = 0;
    while (off < rest.length) {
      const { bytesWritten } = await fh.write(rest, off, rest.length - off, position + done + off);
      off += bytesWritten;
    }
    done += off;
  }
};

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
