// Small process and timing helpers for the benchmark harness: run a command with a time limit,
// stop a process, watch a log. Trusts nothing it runs: every wait is bounded, and a failing
// command's output is part of the error it throws. sleep, waitFor and portOpen are the tests'
// (test/helpers/net.ts), re-exported here for the harness.
import { spawn, type SpawnOptions } from 'node:child_process';
import { sleep, waitFor } from '../../test/helpers/net.js';

export { sleep, waitFor, portOpen } from '../../test/helpers/net.js';

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time in milliseconds. */
  ms: number;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  /** Throw when the exit code is not 0 (default true). */
  check?: boolean;
}

/** Runs a command to completion; kills it (SIGKILL) after timeoutMs (default 60 s). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<CmdResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const so: SpawnOptions = { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] };
    const child = spawn(cmd, args, so);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs ?? 60_000);
    child.on('error', (err) => { clearTimeout(timer); reject(new Error(`${cmd}: ${err.message}`)); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const r: CmdResult = { code: code ?? (signal ? 128 : -1), stdout, stderr, ms: performance.now() - t0 };
      if (timedOut) return reject(new Error(`${cmd} ${args.join(' ')}: no exit within ${opts.timeoutMs ?? 60_000} ms\n${stderr}`));
      if ((opts.check ?? true) && r.code !== 0) {
        return reject(new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${stdout}${stderr}`));
      }
      resolve(r);
    });
    // A program that exits without reading its input (nsenter ... cat, postfix start) closes the
    // pipe: EPIPE on stdin is not an error of the command (its exit status says how it went).
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.input ?? '');
  });
}

/** Is process `pid` alive (signal 0)? */
export function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Sends SIGTERM to pid, then SIGKILL after graceMs; resolves when it is gone. */
export async function stopPid(pid: number, graceMs = 5000): Promise<void> {
  if (!alive(pid)) return;
  try { process.kill(pid, 'SIGTERM'); } catch { return; }
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await sleep(25);
  if (alive(pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  const hard = Date.now() + 2000;
  while (alive(pid) && Date.now() < hard) await sleep(25);
}

/** Requires root; the message says why. */
export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(`${what} needs root (it binds port 53/25 on loopback addresses and uses a private mount namespace)`);
  }
}

/** countLog / waitForLog over a log file read by `readLog`, shared by the Postfix and Backstop instances. */
export function logWatcher(readLog: () => string, label: string) {
  return {
    countLog(re: RegExp): number {
      const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
      return readLog().match(g)?.length ?? 0;
    },
    /** Resolves with the whole matching line. */
    async waitForLog(re: RegExp, ms = 15_000): Promise<string> {
      let line = '';
      await waitFor(() => {
        const m = new RegExp(`^.*${re.source}.*$`, 'm' + re.flags.replace(/[gm]/g, '')).exec(readLog());
        if (m) line = m[0];
        return !!m;
      }, ms, `${label} ${re}`, 50);
      return line;
    },
  };
}
