// Starts the real `backstop start` as a child process on a configuration written by the test,
// and waits until its SMTP port answers. Logs go to the child's stdout and are kept for asserts.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliCommand, repoRoot } from './cli.js';
import { portOpen, sleep } from './net.js';

export interface RunningServer {
  dir: string;
  port: number;
  child: ChildProcess;
  /** Everything the server logged so far. */
  log(): string;
  /** Resolves when a log line matches, rejects after timeoutMs. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  exited: Promise<number | string | null>;
  stop(signal?: NodeJS.Signals): Promise<number | string | null>;
  /** Remove the configuration and spool folder. */
  cleanup(): void;
}

export function makeConfigDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  // Like /etc/postfix: the workers (mail_owner) must be able to pass through to the queue in it.
  chmodSync(dir, 0o755);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

export async function startServer(
  dir: string, port: number, host = '127.0.0.1', timeoutMs = 20_000, env: NodeJS.ProcessEnv = {},
): Promise<RunningServer> {
  const { cmd, argv } = cliCommand(['start', '-c', dir]);
  const child = spawn(cmd, argv, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => { out += d.toString(); for (const l of [...listeners]) l(); };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let exited: number | string | null | undefined;
  const exit = new Promise<number | string | null>((r) => child.on('exit', (code, sig) => { exited = sig ?? code; r(exited); }));

  const deadline = Date.now() + timeoutMs;
  while (!(await portOpen(port, host))) {
    if (exited !== undefined) throw new Error(`backstop exited with ${exited} before listening:\n${out}`);
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`backstop did not listen on ${host}:${port}:\n${out}`); }
    await sleep(25);
  }
  return {
    dir,
    port,
    child,
    exited: exit,
    log: () => out,
    waitForLog(re, ms = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) { listeners.delete(check); clearTimeout(t); resolve(m[0]); }
        };
        const t = setTimeout(() => { listeners.delete(check); reject(new Error(`no log line ${re} within ${ms} ms:\n${out.slice(-4000)}`)); }, ms);
        listeners.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (exited !== undefined) return exited;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exit;
      clearTimeout(t);
      return code;
    },
    cleanup() { rmSync(dir, { recursive: true, force: true }); },
  };
}
