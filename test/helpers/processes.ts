// The real server's process tree, for the process-model tests: a process's children, the role a
// worker was started with, and the user it runs as (all read from pgrep and /proc).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function children(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** `smtpd` or `qmgr` (the worker's BACKSTOP_WORKER_ROLE), '' for anything else. */
export function roleOf(pid: number): string {
  try {
    return /BACKSTOP_WORKER_ROLE=(\w+)/.exec(readFileSync(`/proc/${pid}/environ`, 'latin1'))?.[1] ?? '';
  } catch {
    return '';
  }
}

export function uidOf(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}
