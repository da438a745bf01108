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

/**
 * A relay for relay.test (→ [127.0.0.2]:relayPort, nothing else allowed) listening on
 * 127.0.0.1:port: the configuration the process-model, operation and dashboard tests share.
 * `workers: 0` leaves backstop_smtpd_workers unset; `extra` main.cf lines and files are added.
 */
export function relayConfigDir(port: number, relayPort: number, opts: { workers?: number; extra?: string[]; files?: Record<string, string> } = {}): string {
  const workers = opts.workers ?? 2;
  return makeConfigDir({
    'main.cf': [
      'myhostname = mx2.backup.test',
      'mydestination =',
      'inet_interfaces = 127.0.0.1',
      'mynetworks = 127.0.0.254/32',
      'queue_directory = spool',
      'data_directory = data',
      'relay_domains = relay.test',
      `transport_maps = inline:{ relay.test=smtp:[127.0.0.2]:${relayPort} }`,
      'smtpd_recipient_restrictions = reject_unauth_destination',
      ...(workers ? [`backstop_smtpd_workers = ${workers}`] : []),
      ...(opts.extra ?? []),
    ].join('\n') + '\n',
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
    ...opts.files,
  });
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
