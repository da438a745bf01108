// Queue file recycling. A removed queue file (delivered, bounced, deleted) is not unlinked: it is
// renamed into queue_directory/recycle/ (and emptied there when it is larger than
// RECYCLE_KEEP_BYTES), and a writer takes a file from there before it creates a new one.
// Why: ext4 without a journal (the machines we measure on) does not
// hand out an inode freed in the last 5 minutes while another is free, and finds a free one by
// walking past every recently freed inode of the group, one buffer lookup each (fs/ext4/ialloc.c:
// find_inode_bit, recently_deleted). With mail flowing, every new queue file paid ~1 ms of kernel
// CPU on the smtpd's event loop for that walk (perf during bench/cpu-split.ts; 0.9-1.5 ms per
// create in a folder of /tmp). A recycled file needs no new inode. On other file systems it costs
// about what an unlink and a create cost, so it is not switched by file system.
//
// A small file keeps its bytes in recycle/: emptying it freed its one block (a synchronous
// discard on a disk mounted with `discard`) only for the next message to allocate one again —
// a quarter of the queue manager's helper thread in a drain (perf, bench/qmgr-drain.ts). The
// writer that takes it writes over the old bytes and cuts the file to its own length before the
// fsync of its commit (writer.ts), so a committed queue file never holds a byte of another.
//
// Safety. A file in recycle/ is never a message: it leaves its queue by a rename (the removal,
// made durable by the directory fsync as an unlink was), so nothing reads it as mail again.
// A writer takes one by renaming it to its own temporary name, which only one writer can do, and
// uses it only when it is a regular file of its own user with no other name (nlink 1): after a
// power failure a stale name in recycle/ may point at a message's file, which must not be written.
// Anything doubtful is dropped (its name unlinked) and a new file created, as before.
// Trusts its callers for the paths; never throws.

import { closeSync, fstatSync, ftruncateSync, opendirSync, openSync, renameSync, statSync, unlinkSync, type Dir } from 'node:fs';
import { join } from 'node:path';

/** The folder of queue_directory that holds removed files for reuse. Not a queue: nothing in it is mail. */
export const RECYCLE_FOLDER = 'recycle';

/**
 * Files up to this size keep their bytes in recycle/ (one block of a 4 KB file system, what the
 * next message needs anyway); larger ones are emptied there, so the pool holds at most
 * limit × 4 KB of disk (40 MB at the default limit).
 */
export const RECYCLE_KEEP_BYTES = 4096;

/** Whether a removed file of `size` bytes keeps its bytes in recycle/ (else it is emptied there). */
export function keepsBytes(size: number): boolean {
  return size <= RECYCLE_KEEP_BYTES;
}

/** A file taken from recycle/: its descriptor, open for writing, and how many old bytes it still holds. */
export interface TakenFile {
  fd: number;
  /** The writer cuts the file to its own length when it wrote fewer bytes than this. */
  staleBytes: number;
}

/** How long a writer waits before it lists an empty recycle/ again, unless its mtime changed. */
const EMPTY_RELIST_MS = 1000;
/** Names read per listing: bounds the time one listing holds the event loop (about 0.3 ms). */
const LIST_MAX = 1024;
/**
 * Names tried before a writer gives up and creates a file. A name another writer took first
 * costs a failed rename (a path lookup, microseconds); a create costs up to a millisecond, so
 * a writer tries many before it gives up.
 */
const TAKE_TRIES = 64;

export class RecyclePool {
  private readonly folder: string;
  /** Names listed in recycle/, not yet tried by this process. */
  private names: string[] = [];
  private nextListAt = 0;
  /** recycle/'s modification time when it was last listed: a change means files came in. */
  private listedMtime = -1;
  /** The next name a removed file gets: r0 .. r<limit-1>, in turn, from a random start. */
  private next: number;
  /** Files taken (for tests). */
  taken = 0;

  constructor(
    queueDirectory: string,
    /** Files kept at most: a removed file takes the name of the oldest when all are used (0: off). */
    readonly limit: number,
  ) {
    this.folder = join(queueDirectory, RECYCLE_FOLDER) + '/';
    this.next = limit > 0 ? Math.floor(Math.random() * limit) : 0;
  }

  /**
   * Where the next removed file goes, or null when recycling is off. When the pool is full the
   * rename replaces the file of that name, which is then freed as an unlink would free it.
   */
  place(): string | null {
    if (this.limit <= 0) return null;
    const name = `r${this.next}`;
    this.next = (this.next + 1) % this.limit;
    return this.folder + name;
  }

  /** A file this process just placed (`place()`) is there: offer it to this process's writers. */
  offer(path: string): void {
    this.names.push(path.slice(this.folder.length));
  }

  /**
   * Take a removed file as `dest` (a temporary name only this process uses) and open it for
   * writing at its start, or null when none is at hand (the caller creates a new file). It may
   * still hold old bytes (`staleBytes`), to be written over and cut off by the caller.
   */
  take(dest: string): TakenFile | null {
    if (this.limit <= 0) return null;
    for (let tries = 0; tries < TAKE_TRIES; tries++) {
      if (!this.names.length && !this.list()) return null;
      const name = this.names.pop()!;
      try {
        renameSync(this.folder + name, dest);
      } catch {
        continue; // another writer took it, or it was replaced: try the next
      }
      const got = this.openTaken(dest);
      if (got !== null) this.taken++;
      return got;
    }
    return null;
  }

  /** Open what was taken; if it is not a lone regular file of ours, drop the name and say no. */
  private openTaken(dest: string): TakenFile | null {
    let fd = -1;
    try {
      fd = openSync(dest, 'r+');
      const st = fstatSync(fd);
      // The user asked now: a worker becomes mail_owner after it built its writer.
      const uid = process.getuid?.() ?? st.uid;
      if (st.isFile() && st.nlink === 1 && st.uid === uid) {
        // Left full by a crash between the move and the emptying: emptied now, not kept.
        const keep = keepsBytes(st.size);
        if (!keep) ftruncateSync(fd, 0);
        return { fd, staleBytes: keep ? st.size : 0 };
      }
    } catch {
      /* dropped below */
    }
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(dest);
    } catch {
      /* gone already */
    }
    return null;
  }

  /**
   * List recycle/ (at most LIST_MAX names, shuffled); true when it found any. Synchronous: a
   * listing in the thread pool waited behind the smtpd's fsyncs while every message in between
   * got a new file. While the folder was empty it is listed again once a second, or as soon as
   * its modification time says files came in (one stat, microseconds).
   */
  private list(): boolean {
    let mtime = -1;
    try {
      mtime = statSync(this.folder).mtimeMs;
    } catch {
      return false; // no recycle/ (recycling off where this queue was made): create files
    }
    if (Date.now() < this.nextListAt && mtime === this.listedMtime) return false;
    this.listedMtime = mtime;
    const names: string[] = [];
    let dir: Dir | undefined;
    try {
      dir = opendirSync(this.folder, { bufferSize: 256 });
      for (let e = dir.readSync(); e && names.length < LIST_MAX; e = dir.readSync()) names.push(e.name);
    } catch {
      /* what was read is used */
    } finally {
      dir?.closeSync();
    }
    // Writers of several processes list the same names: each tries them in its own order.
    for (let i = names.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [names[i], names[j]] = [names[j], names[i]];
    }
    this.names = names;
    this.nextListAt = names.length ? 0 : Date.now() + EMPTY_RELIST_MS;
    return names.length > 0;
  }
}
