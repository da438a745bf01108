// Starts the real Backstop server for a benchmark: `node bin/backstop.js start -c DIR` (the
// compiled tree, as `npm run bench` builds it; the TypeScript sources through tsx when there is
// no build), with a main.cf/master.cf written from parameter maps, its log (stdout) going to a
// file, optionally inside its own cgroup for CPU/memory figures.
// Trusts the backstop CLI to honour Postfix's parameter names; checks only that it listens.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, waitFor, portOpen, sleep, logWatcher, type CmdResult } from './proc.js';
import { createMeter, type Meter } from './meter.js';
import { renderMain, queueCounts, type Params, type QueueCounts } from './postfix.js';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Newest modification time of the .ts files under a folder (ms). */
function newestTs(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestTs(p));
    else if (e.name.endsWith('.ts')) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

let compiledChecked = false;
/**
 * Is there a compiled tree? It is preferred even when older than src/ (`npm run bench` builds
 * first, and in a tree others are editing, the build is a consistent snapshot); a warning says so.
 */
export function compiledIsFresh(): boolean {
  const main = join(repoRoot, 'dist', 'src', 'main.js');
  const have = existsSync(main);
  if (!compiledChecked) {
    compiledChecked = true;
    if (!have) console.error('bench: no dist/ (run npm run build); running Backstop from the sources through tsx');
    else if (statSync(main).mtimeMs < newestTs(join(repoRoot, 'src')) - 1000) console.error('bench: note: dist/ is older than src/; benchmarking the last build');
  }
  return have;
}

/** How the backstop command is run: compiled (bin/backstop.js) when built, else the sources through tsx. */
export function backstopCommand(args: string[]): { cmd: string; args: string[]; display: string } {
  if (compiledIsFresh()) {
    return { cmd: process.execPath, args: [join(repoRoot, 'bin', 'backstop.js'), ...args], display: `node bin/backstop.js ${args.join(' ')}` };
  }
  return {
    cmd: process.execPath,
    args: ['--import', 'tsx', join(repoRoot, 'test', 'helpers', 'cli-entry.ts'), ...args],
    display: `node --import tsx test/helpers/cli-entry.ts ${args.join(' ')}`,
  };
}

export interface BackstopOptions {
  name?: string;
  main: Params;
  /** master.cf lines, e.g. "127.0.0.1:2526 inet n - n - - smtpd". */
  services: string[];
  files?: Record<string, string>;
  meter?: boolean;
  startTimeoutMs?: number;
  /** Extra node options, e.g. ['--cpu-prof'] (only with the compiled tree). */
  nodeOptions?: string[];
}

export interface BackstopInstance {
  configDir: string;
  queueDir: string;
  logFile: string;
  pid: number;
  meter?: Meter;
  log(): string;
  countLog(re: RegExp): number;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Runs `backstop PROG -c DIR args` (postqueue, postsuper, ...). */
  command(prog: string, args: string[], opts?: { check?: boolean; timeoutMs?: number }): Promise<CmdResult>;
  flush(): Promise<void>;
  deleteAll(): Promise<void>;
  queue(): QueueCounts;
  waitSettled(timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
  cleanup(): void;
}

export async function startBackstop(o: BackstopOptions): Promise<BackstopInstance> {
  const configDir = mkdtempSync(join(tmpdir(), `backstop-bench-${o.name ?? 'backup'}-`));
  // The workers (mail_owner) must be able to pass through to the queue in it.
  chmodSync(configDir, 0o755);
  const main: Params = { queue_directory: join(configDir, 'spool'), data_directory: join(configDir, 'data'), maillog_file: '', ...o.main };
  writeFileSync(join(configDir, 'main.cf'), renderMain(main));
  writeFileSync(join(configDir, 'master.cf'), o.services.join('\n') + '\n');
  for (const [n, t] of Object.entries(o.files ?? {})) writeFileSync(join(configDir, n), t);
  const logFile = join(configDir, 'maillog');
  const fd = openSync(logFile, 'a');
  const meter = o.meter ? createMeter(`backstop-${o.name ?? 'backup'}`) : undefined;
  const bc = backstopCommand(['start', '-c', configDir]);
  const inner = { cmd: bc.cmd, args: [...(o.nodeOptions ?? []), ...bc.args] };
  const outer = meter ? meter.wrap(inner.cmd, inner.args) : inner;
  // cwd: the repository, so that `--import tsx` resolves; the configuration uses absolute paths.
  const child: ChildProcess = spawn(outer.cmd, outer.args, { cwd: repoRoot, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const readLog = () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } };
  let exited: number | null | undefined;
  const exit = new Promise<void>((r) => child.on('exit', (c) => { exited = c; r(); }));
  const stop = async () => {
    if (exited === undefined) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exit;
      clearTimeout(t);
    }
    if (meter) {
      const deadline = Date.now() + 3000;
      while (meter.pids().length && Date.now() < deadline) await sleep(50);
      for (const p of meter.pids()) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
      await meter.close();
    }
  };
  const inets = o.services
    .map((l) => /^(?:\[?([0-9.:a-f]+)\]?:)?(\d+)\s+inet\s/.exec(l))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => ({ host: m[1] ?? '127.0.0.1', port: Number(m[2]) }));
  try {
    for (const s of inets) {
      await waitFor(async () => {
        if (exited !== undefined) throw new Error(`backstop exited with ${exited} before listening`);
        return portOpen(s.port, s.host, 300);
      }, o.startTimeoutMs ?? 30_000, `backstop on ${s.host}:${s.port}`, 100);
    }
  } catch (err) {
    await stop();
    const log = readLog();
    rmSync(configDir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n--- backstop output ---\n${log.slice(-3000)}`);
  }
  if (meter && meter.method === 'proc') meter.addRoot(child.pid!);
  const command = (prog: string, args: string[], x: { check?: boolean; timeoutMs?: number } = {}) => {
    const c = backstopCommand([prog, '-c', configDir, ...args]);
    return run(c.cmd, c.args, { check: x.check, timeoutMs: x.timeoutMs ?? 120_000 });
  };
  const queueDir = main.queue_directory;
  const inst: BackstopInstance = {
    configDir, queueDir, logFile, pid: child.pid!, meter,
    log: readLog,
    ...logWatcher(readLog, 'backstop log line'),
    command,
    async flush() { await command('postqueue', ['-f']); },
    async deleteAll() { await command('postsuper', ['-d', 'ALL'], { check: false }); },
    queue: () => queueCounts(queueDir),
    async waitSettled(ms) {
      await waitFor(() => { const q = inst.queue(); return q.incoming + q.active === 0; }, ms, 'backstop queue to settle', 100);
    },
    stop,
    cleanup() { rmSync(configDir, { recursive: true, force: true }); },
  };
  return inst;
}
