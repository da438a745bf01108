// Change detection for file-backed tables. Postfix daemons exit when a table file changes and the
// master restarts them; we re-stat the file at most once per interval on lookup and rebuild the
// table in place — and tell a process-wide listener (onTableChange), so that an smtpd worker that
// no longer has the privileges to open the new file can ask its master for a fresh successor, as
// Postfix's daemons do. Trusts the file system's mtime/size/inode to change when the file does.

import { statSync } from 'node:fs';

export interface FileStamp {
  ino: number;
  dev: number;
  size: number;
  mtimeMs: number;
}

export function stampOf(path: string): FileStamp | undefined {
  try {
    const st = statSync(path);
    return { ino: st.ino, dev: st.dev, size: st.size, mtimeMs: st.mtimeMs };
  } catch {
    return undefined;
  }
}

let changeListener: ((path: string) => void) | undefined;

/** Be told when any table file of this process changed (once per change). */
export function onTableChange(listener: ((path: string) => void) | undefined): void {
  changeListener = listener;
}

export function sameStamp(a: FileStamp | undefined, b: FileStamp | undefined): boolean {
  if (!a || !b) return a === b;
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/**
 * Holds a value built from a file and rebuilds it when the file's stamp changes. `current()` is
 * cheap: one Date.now() comparison except once per interval. A failed rebuild throws from
 * current() (callers turn that into a temporary failure) and is retried at the next check.
 */
export class Reloading<T> {
  private value: T;
  private stamp: FileStamp | undefined;
  private nextCheck: number;
  private failure: Error | undefined;

  constructor(
    private readonly path: string,
    private readonly build: (path: string) => T,
    private readonly intervalMs: number,
    private readonly dispose?: (old: T) => void,
    /** Which parts of the stamp matter; LMDB databases change in place and only need a new inode check. */
    private readonly same: (a: FileStamp | undefined, b: FileStamp | undefined) => boolean = sameStamp,
  ) {
    this.stamp = stampOf(path);
    this.value = build(path);
    this.nextCheck = Date.now() + intervalMs;
  }

  current(): T {
    if (Date.now() >= this.nextCheck) this.check();
    if (this.failure) throw this.failure;
    return this.value;
  }

  /** Check now (also used by tests and by a SIGHUP reload). */
  check(): void {
    this.nextCheck = Date.now() + this.intervalMs;
    const st = stampOf(this.path);
    if (this.same(st, this.stamp) && !this.failure) return;
    if (!this.same(st, this.stamp)) changeListener?.(this.path);
    try {
      const next = this.build(this.path);
      const old = this.value;
      this.value = next;
      this.stamp = st;
      this.failure = undefined;
      if (this.dispose && old !== next) this.dispose(old);
    } catch (err) {
      this.stamp = st;
      this.failure = err as Error;
    }
  }

  peek(): T {
    return this.value;
  }
}
