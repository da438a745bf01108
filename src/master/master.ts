// The master: `backstop start` loads and validates the configuration, refuses to start on errors
// (binding nothing), creates queue_directory and data_directory (mode 700), writes a pid file,
// starts the services, reloads on SIGHUP (a bad new configuration is refused with a logged error
// and the old one stays in force) and stops cleanly on SIGTERM/SIGINT.
// `backstop reload` / `backstop stop` signal the running master through the pid file.

import { chownSync, closeSync, openSync, mkdirSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { availableParallelism } from 'node:os';
import { formatDiagnostic, loadConfig, type Config, type Diagnostic, type LoadedConfig } from '../config/index.js';
import { maillog } from '../log/index.js';
import { validateAll } from '../check/index.js';
import { processAlive, QUEUE_NAMES, RECYCLE_FOLDER } from '../queue/index.js';
import { configPath, maillogPath, openMaillog, pidFile } from './paths.js';
import { chownTree, unreachable, workerOwner, type Owner } from './owner.js';
import { Workers } from './workers.js';
import type { Observation } from '../observe/index.js';
import { HttpListener } from './httplistener.js';

/** The running services as one unit; built from a validated configuration. */
export interface App {
  reload(loaded: LoadedConfig): Promise<void>;
  stop(): Promise<void>;
  /** Every process's report for the metrics and the status. */
  observe(): Promise<Observation>;
  /** logrotate: every worker reopens maillog_file (the master reopens its own first). */
  reopenLogs(): void;
}

export type AppFactory = (loaded: LoadedConfig) => Promise<App>;

/** Load and validate; returns the configuration and every diagnostic (errors make it unusable). */
export async function loadValidated(configDir: string): Promise<{ loaded: LoadedConfig; diagnostics: Diagnostic[]; ok: boolean }> {
  const loaded = loadConfig(configDir);
  const diagnostics = [...loaded.diagnostics, ...(await validateAll(loaded))];
  return { loaded, diagnostics, ok: !diagnostics.some((d) => d.severity === 'error') };
}


export function runningPid(config: Config): number | undefined {
  const file = pidFile(config);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : undefined;
}

export interface StartOptions {
  stderr: (s: string) => void;
  createApp: AppFactory;
}

/**
 * How many smtpd workers: backstop_smtpd_workers, or one per core when it is 0, never more than a
 * numeric master.cf process limit of an smtpd service; 0 with backstop_single_process = yes.
 */
export function workerCount(loaded: LoadedConfig): number {
  const { config } = loaded;
  if (config.bool('backstop_single_process')) return 0;
  const limits = loaded.services.map((s) => s.maxproc).filter((n): n is number => n !== undefined && n > 0);
  const wanted = config.int('backstop_smtpd_workers') || availableParallelism();
  return Math.max(1, Math.min(wanted, ...limits));
}

/** maillog_file exists (mode 600) and belongs to mail_owner, who writes to it from the workers. */
function prepareMaillog(config: Config, owner: Owner | undefined): void {
  const logPath = maillogPath(config);
  if (!logPath || !owner) return;
  try {
    mkdirSync(dirname(logPath), { recursive: true });
    closeSync(openSync(logPath, 'a', 0o600));
    chownSync(logPath, owner.uid, owner.gid);
  } catch (err) {
    maillog.logger('master').warning(`maillog_file ${logPath}: ${(err as Error).message}`);
  }
}

/** Runs until SIGTERM/SIGINT; resolves with the exit status. */
export async function startMaster(configDir: string, opts: StartOptions): Promise<number> {
  const first = await loadValidated(configDir);
  for (const d of first.diagnostics) if (d.severity !== 'note') opts.stderr(`backstop: ${formatDiagnostic(d)}\n`);
  if (!first.ok) {
    opts.stderr('backstop: fatal: configuration errors; not started\n');
    return 1;
  }
  const { config } = first.loaded;
  const workers = workerCount(first.loaded);
  // With workers, only the master keeps root: refuse now (binding nothing) when mail_owner is unusable.
  const who = workers > 0 ? workerOwner(config.str('mail_owner')) : {};
  if (who.error) {
    opts.stderr(`backstop: fatal: ${who.error}\n`);
    return 1;
  }
  const queueDir = configPath(config, 'queue_directory');
  const dataDir = configPath(config, 'data_directory');
  // Mode 700 for the folders themselves; folders made above them get the ordinary mode.
  for (const dir of [queueDir, dataDir, join(queueDir, 'pid')]) {
    mkdirSync(dirname(dir), { recursive: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  // Every queue folder exists before the workers start, so chownTree below gives them to mail_owner.
  for (const q of [...QUEUE_NAMES, RECYCLE_FOLDER, 'public']) mkdirSync(join(queueDir, q), { recursive: true });

  const other = runningPid(config);
  if (other) {
    opts.stderr(`backstop: fatal: the Backstop mail system is already running (pid ${other})\n`);
    return 1;
  }
  if (who.owner) {
    for (const [name, dir] of [['queue_directory', queueDir], ['data_directory', dataDir]]) {
      const why = unreachable(dir, who.owner);
      if (why) {
        opts.stderr(`backstop: fatal: ${name} ${dir}: ${why}\n`);
        return 1;
      }
    }
    // The workers write the queue, the verify cache and the maillog as mail_owner.
    for (const dir of [queueDir, dataDir]) chownTree(dir, who.owner);
    prepareMaillog(config, who.owner);
  }
  openMaillog(config);
  const log = maillog.logger('master');

  // The pid file exists before any listener answers, so `backstop reload|stop` (and anyone who
  // sees the port open) always finds the master.
  const pf = pidFile(config);
  writeFileSync(pf, `${process.pid}\n`, { mode: 0o600 });
  // Signals are handled from here on, also while the services start: a reload waits for them,
  // a stop lets them finish starting and then stops them.
  let started: (app: App | undefined) => void = () => undefined;
  const appReady = new Promise<App | undefined>((r) => (started = r));
  let reloading: Promise<void> = appReady.then(() => undefined);
  const onHup = () => {
    reloading = reloading.then(async () => {
      const app = await appReady;
      if (!app) return;
      const next = await loadValidated(configDir);
      for (const d of next.diagnostics) {
        if (d.severity === 'error') log.error(formatDiagnostic(d).replace(/^error: /, ''));
        else if (d.severity === 'warning') log.warning(formatDiagnostic(d).replace(/^warning: /, ''));
      }
      if (!next.ok) {
        log.error('reload refused: configuration errors; the running configuration stays in force');
        return;
      }
      try {
        await app.reload(next.loaded);
        await http.reload(next.loaded.config);
        log.info(`reload -- version ${VERSION}, configuration ${next.loaded.config.dir}`);
      } catch (err) {
        log.error(`reload failed: ${(err as Error).message}; the running configuration stays in force`);
      }
    });
  };
  process.on('SIGHUP', onHup);
  const stopSignal = new Promise<string>((resolveStop) => {
    process.once('SIGTERM', () => resolveStop('15'));
    process.once('SIGINT', () => resolveStop('2'));
  });

  let app: App;
  try {
    if (who.note) log.info(who.note);
    app = workers > 0 ? await Workers.start(first.loaded, workers, who.owner) : await opts.createApp(first.loaded);
  } catch (err) {
    started(undefined);
    process.off('SIGHUP', onHup);
    log.fatal(`cannot start: ${(err as Error).message}`);
    opts.stderr(`backstop: fatal: cannot start: ${(err as Error).message}\n`);
    rmSync(pf, { force: true });
    await maillog.close();
    return 1;
  }
  started(app);
  const http = new HttpListener(app, VERSION);
  await http.reload(config);
  // logrotate (SIGUSR1, as Postfix's postlogd): reopen maillog_file here and in every worker.
  const onUsr1 = () => {
    // The workers (mail_owner) may not create files where root keeps the log: the master does.
    prepareMaillog(config, who.owner);
    maillog.reopen();
    app.reopenLogs();
    log.info('maillog_file reopened');
  };
  process.on('SIGUSR1', onUsr1);
  log.info(`daemon started -- version ${VERSION}, configuration ${config.dir}`);

  const signal = await stopSignal;
  log.info(`terminating on signal ${signal}`);
  process.off('SIGHUP', onHup);
  process.off('SIGUSR1', onUsr1);
  await reloading;
  await http.close();
  await app.stop();
  rmSync(pf, { force: true });
  await maillog.close();
  return 0;
}

/** Send a signal to the running master: `backstop reload` (SIGHUP) / `backstop stop` (SIGTERM). */
export async function signalMaster(configDir: string, signal: 'SIGHUP' | 'SIGTERM', stderr: (s: string) => void): Promise<number> {
  const { config } = loadConfig(configDir);
  const pid = runningPid(config);
  if (!pid) {
    stderr('backstop: fatal: the Backstop mail system is not running\n');
    return 1;
  }
  process.kill(pid, signal);
  if (signal === 'SIGTERM') {
    const deadline = Date.now() + 30_000;
    while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (processAlive(pid)) {
      stderr(`backstop: warning: master (pid ${pid}) still running after 30s\n`);
      return 1;
    }
    stderr('backstop: stopping the Backstop mail system\n');
  } else {
    stderr('backstop: refreshing the Backstop mail system\n');
  }
  return 0;
}

export const VERSION = '0.1.0';
