// The master's side of the process model, as Postfix's master(8): it starts one queue manager
// worker and N smtpd workers (worker.ts), which change to mail_owner when the master is root
// (once they have opened what only root may read, as Postfix's daemons do); it binds the listening sockets itself and shares them with the
// smtpd workers (Node's cluster module, SCHED_NONE: the kernel hands each connection to one
// worker's accept; the master never accepts, parses or queues anything); it routes the workers'
// messages (ipc.ts); it restarts a worker that dies — at once when it had been serving, after
// service_throttle_time when it died during start-up (Postfix: "bad command startup --
// throttling"); a reload starts a new generation of smtpd workers and then lets the old one
// finish its sessions, so no connection is refused; stop lets sessions finish, then the queue
// manager. While the queue manager is away (restarting), announcements for it wait here.

import cluster, { type Worker } from 'node:cluster';
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants as osConstants } from 'node:os';
import type { Config, LoadedConfig } from '../config/index.js';
import { maillog } from '../log/index.js';
import { Anvil } from '../smtpd/index.js';
import { validateAll } from '../check/index.js';
import type { App } from './master.js';
import type { Owner } from './owner.js';
import { configPath, logListening } from './paths.js';
import { removeWriterFiles } from '../queue/index.js';
import { WORKER_ENV, type QmgrMessage, type SmtpdMessage, type ToQmgr, type ToSmtpd, type ToWorker } from './ipc.js';
import type { Observation, WorkerInfo, WorkerReport } from '../observe/index.js';

const here = fileURLToPath(import.meta.url);
/** worker.js next to this file (worker.ts when the sources run through tsx). */
const WORKER_ENTRY = join(dirname(here), `worker${extname(here)}`);
/** How long a worker may take to start, and how long stop waits before SIGKILL. */
const START_LIMIT_MS = 30_000;
const STOP_LIMIT_MS = 30_000;
/** How long the master waits for a worker's report (metrics, status). */
const OBSERVE_LIMIT_MS = 3_000;

type Proc = ChildProcess | Worker['process'];

interface SmtpdWorker {
  worker: Worker;
  /** This worker runs backstop_verify_sync_map's probes (its replacement will too). */
  verifySync: boolean;
  /** A replacement is being checked or started. */
  replacing?: boolean;
  /** Connections this worker holds in the master's anvil, per client (released if it dies). */
  clients: Map<string, number>;
  slot: number;
  generation: number;
  started: number;
  ready: boolean;
  stopping: boolean;
}

function exitText(name: string, pid: number | undefined, code: number | null, signal: string | null): string {
  const number = signal ? (osConstants.signals as Record<string, number>)[signal] ?? signal : undefined;
  return `process ${name} pid ${pid ?? '?'} ${signal ? `killed by signal ${number}` : `exit status ${code ?? 0}`}`;
}

export class Workers implements App {
  private loaded: LoadedConfig;
  private get config(): Config {
    return this.loaded.config;
  }
  private qmgr: ChildProcess | undefined;
  private qmgrReady = false;
  private qmgrStarted = 0;
  private readonly observeWaits = new Map<number, (r: WorkerReport) => void>();
  private observeSeq = 0;
  private readonly forQmgr: ToQmgr[] = [];
  private readonly smtpd = new Set<SmtpdWorker>();
  private readonly flushRoutes = new Map<number, { w: SmtpdWorker; req: number }>();
  private flushSeq = 0;
  private slotSeq = 0;
  private generation = 0;
  private stopping = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly log = maillog.logger('master');
  /** One anvil for every smtpd worker (Postfix's anvil(8) server). */
  private readonly anvil = new Anvil();
  private readonly anvilPruner = setInterval(() => this.anvil.prune(this.config.time('anvil_rate_time_unit')), 60_000).unref();

  private constructor(
    loaded: LoadedConfig,
    private readonly count: number,
    private readonly owner: Owner | undefined,
  ) {
    this.loaded = loaded;
  }

  /** Start the queue manager, then the smtpd workers; resolves when all are ready. */
  static async start(loaded: LoadedConfig, count: number, owner?: Owner): Promise<Workers> {
    const w = new Workers(loaded, count, owner);
    // The kernel, not the master, hands connections to the workers (the master never accepts).
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: WORKER_ENTRY, args: [] });
    try {
      // The queue manager first: it recovers the queue before any smtpd worker adds to it, and
      // announces every message it takes in (Postfix's "queue active" line).
      await w.startQmgr(true);
      await w.startGeneration(true);
    } catch (err) {
      await w.stop();
      throw err;
    }
    return w;
  }

  private env(role: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const owner = this.owner ? { [WORKER_ENV.owner]: `${this.owner.uid}:${this.owner.gid}` } : {};
    const t = this.loaded.texts;
    const texts = t ? { [WORKER_ENV.mainCf]: t.main, [WORKER_ENV.masterCf]: t.master } : {};
    return { ...process.env, [WORKER_ENV.role]: role, [WORKER_ENV.configDir]: this.config.dir, ...texts, ...owner, ...extra };
  }

  // ---------------------------------------------------------------- the queue manager

  private startQmgr(first: boolean): Promise<void> {
    const child = fork(WORKER_ENTRY, [], { env: this.env('qmgr') });
    this.qmgr = child;
    // A message sent just as the child dies fails with EPIPE as an 'error' event; its 'exit' is
    // what the master acts on, and nothing sent is needed by a successor (the queue is on disk).
    child.on('error', () => undefined);
    this.qmgrReady = false;
    this.qmgrStarted = Date.now();
    let failure: string | undefined;
    return new Promise<void>((resolve, reject) => {
      const limit = setTimeout(() => child.kill('SIGKILL'), START_LIMIT_MS);
      child.on('message', (m: QmgrMessage) => {
        if (m.t === 'failed') failure = m.message;
        else if (m.t === 'ready') {
          clearTimeout(limit);
          this.qmgrReady = true;
          for (const queued of this.forQmgr.splice(0)) child.send(queued);
          resolve();
        } else this.fromQmgr(m);
      });
      child.on('exit', (code, signal) => {
        clearTimeout(limit);
        const wasReady = this.qmgrReady;
        this.qmgrReady = false;
        if (this.qmgr === child) this.qmgr = undefined;
        if (this.stopping) return;
        this.log.warning(exitText('qmgr', child.pid, code, signal));
        if (first && !wasReady) return reject(new Error(failure ?? `the queue manager did not start (${signal ? `signal ${signal}` : `exit status ${code}`})`));
        this.restart('qmgr', wasReady, () => this.startQmgr(false));
      });
    });
  }

  private toQmgr(m: ToQmgr): void {
    // A queue manager that has just died may still look connected: the failed send is dropped
    // (a callback keeps it from becoming an 'error' event that would take the master down); what
    // it announced is on disk, and the next queue manager finds it there.
    if (this.qmgr && this.qmgrReady && this.qmgr.connected) this.qmgr.send(m, () => undefined);
    else this.forQmgr.push(m);
  }

  private fromQmgr(m: QmgrMessage): void {
    if (m.t === 'flushed') {
      const route = this.flushRoutes.get(m.req);
      this.flushRoutes.delete(m.req);
      if (route) this.toSmtpd(route.w, { t: 'flushed', req: route.req, ok: m.ok });
    } else if (m.t === 'destination-up') {
      for (const w of this.smtpd) this.toSmtpd(w, m);
    } else if (m.t === 'observed') this.observed(m.req, m.report);
  }

  // ---------------------------------------------------------------- the smtpd workers

  /**
   * A generation of smtpd workers. It has started when one of them has: a worker that failed
   * beside it is started again (throttled), as Postfix's master does; when none could start
   * (a broken configuration or verify cache), the reason of the first is the error.
   */
  private async startGeneration(first: boolean): Promise<SmtpdWorker[]> {
    const generation = ++this.generation;
    const results = await Promise.allSettled(Array.from({ length: this.count }, (_, i) => this.startSmtpd(generation, i === 0, true)));
    const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (started.length === 0) throw (results[0] as PromiseRejectedResult).reason;
    results.forEach((r, i) => {
      if (r.status === 'rejected') this.restart('smtpd', false, () => this.startSmtpd(generation, i === 0, false).then(() => undefined));
    });
    if (first) {
      logListening(started[0].addresses);
    }
    return started.map((s) => s.w);
  }

  /** One smtpd worker; `settle`: reject when it dies before it is ready (else it is restarted). */
  private startSmtpd(generation: number, verifySync: boolean, settle: boolean): Promise<{ w: SmtpdWorker; addresses: Array<{ host: string; port: number }> }> {
    const slot = ++this.slotSeq;
    const worker: Worker = cluster.fork(this.env('smtpd', { [WORKER_ENV.slot]: String(slot), ...(verifySync ? { [WORKER_ENV.verifySync]: '1' } : {}) }));
    worker.on('error', () => undefined); // as the queue manager's: its 'exit' is handled below
    const w: SmtpdWorker = { worker, verifySync, clients: new Map(), slot, generation, started: Date.now(), ready: false, stopping: false };
    this.smtpd.add(w);
    let failure: string | undefined;
    return new Promise((resolve, reject) => {
      const limit = setTimeout(() => worker.process.kill('SIGKILL'), START_LIMIT_MS);
      worker.on('message', (m: SmtpdMessage) => {
        if (m.t === 'failed') failure = m.message;
        else if (m.t === 'ready') {
          clearTimeout(limit);
          w.ready = true;
          resolve({ w, addresses: m.addresses });
        } else this.fromSmtpd(w, m);
      });
      worker.on('exit', (code, signal) => {
        clearTimeout(limit);
        this.smtpd.delete(w);
        for (const [id, route] of this.flushRoutes) if (route.w === w) this.flushRoutes.delete(id);
        // Its sessions are gone with it: so are their places in anvil's counts.
        for (const [ip, n] of w.clients) for (let i = 0; i < n; i++) this.anvil.disconnect(ip);
        const pid = worker.process.pid;
        if (pid && (code !== 0 || signal)) removeWriterFiles(configPath(this.config, 'queue_directory'), pid, this.log);
        if (this.stopping || w.stopping) return;
        this.log.warning(exitText('smtpd', worker.process.pid, code, signal));
        if (settle && !w.ready) return reject(new Error(failure ?? `an smtpd worker did not start (${signal ? `signal ${signal}` : `exit status ${code}`})`));
        // A worker of an older generation is not replaced: the new generation serves.
        if (generation !== this.generation) return;
        this.restart('smtpd', w.ready, () => this.startSmtpd(generation, verifySync, false).then(() => undefined));
      });
    });
  }

  private toSmtpd(w: SmtpdWorker, m: ToSmtpd): void {
    if (w.worker.isConnected()) w.worker.send(m, undefined, () => undefined);
  }

  private fromSmtpd(w: SmtpdWorker, m: SmtpdMessage): void {
    switch (m.t) {
      case 'batch':
        for (const one of m.messages) this.fromSmtpd(w, one);
        break;
      case 'accepted':
        this.toQmgr({ t: 'accepted', entries: m.entries });
        break;
      case 'flush': {
        const id = ++this.flushSeq;
        this.flushRoutes.set(id, { w, req: m.req });
        this.toQmgr({ t: 'flush', req: id, domain: m.domain });
        break;
      }
      case 'watch':
        this.toQmgr({ t: 'watch', address: m.address });
        break;
      case 'replace':
        void this.replace(w);
        break;
      case 'observed':
        this.observed(m.req, m.report);
        break;
      case 'anvil-connect': {
        const verdict = this.anvil.connect(m.ip, m.limits);
        w.clients.set(m.ip, (w.clients.get(m.ip) ?? 0) + 1);
        // req 0: a count without limits, nobody waits for the verdict.
        if (m.req !== 0) this.toSmtpd(w, { t: 'anvil', req: m.req, verdict });
        break;
      }
      case 'anvil-disconnect': {
        const n = w.clients.get(m.ip) ?? 0;
        if (n === 0) break;
        if (n === 1) w.clients.delete(m.ip);
        else w.clients.set(m.ip, n - 1);
        this.anvil.disconnect(m.ip);
        break;
      }
    }
  }

  /**
   * A worker's table changed: a fresh worker in its place (it opens, as root, what the old one no
   * longer may), then the old one retires. Only when every table opens now: a damaged file keeps
   * the running worker (its lookups defer) until the file is good again and changes once more.
   */
  private async replace(w: SmtpdWorker): Promise<void> {
    if (w.stopping || this.stopping || w.replacing) return;
    w.replacing = true;
    try {
      const problems = (await validateAll(this.loaded)).filter((d) => d.severity === 'error');
      if (problems.length) {
        this.log.warning(`smtpd pid ${w.worker.process.pid} keeps its tables: ${problems.map((d) => d.message).join('; ')}`);
        return;
      }
      await this.startSmtpd(w.generation, w.verifySync, false);
      w.stopping = true;
      this.toSmtpd(w, { t: 'retire' });
    } catch (err) {
      this.log.error(`smtpd: replacement failed: ${(err as Error).message}`);
    } finally {
      w.replacing = false;
    }
  }

  // ---------------------------------------------------------------- observing

  private observed(req: number, report: WorkerReport): void {
    this.observeWaits.get(req)?.(report);
    this.observeWaits.delete(req);
  }

  /** Every serving worker's report (metrics, last hour, the queue), each wait bounded. */
  async observe(): Promise<Observation> {
    const targets: Array<{ info: WorkerInfo; send: (m: ToWorker) => void }> = [];
    const q = this.qmgr;
    if (q?.pid && this.qmgrReady && q.connected) targets.push({ info: { pid: q.pid, role: 'qmgr', started: this.qmgrStarted, ready: true }, send: (m) => q.send(m) });
    for (const w of this.smtpd) {
      const pid = w.worker.process.pid;
      if (pid && w.ready && !w.stopping && w.worker.isConnected()) targets.push({ info: { pid, role: 'smtpd', started: w.started, ready: true }, send: (m) => this.toSmtpd(w, m) });
    }
    const answers = await Promise.all(
      targets.map(
        (t) =>
          new Promise<WorkerReport | undefined>((resolve) => {
            const req = ++this.observeSeq;
            const timer = setTimeout(() => this.observeWaits.delete(req) && resolve(undefined), OBSERVE_LIMIT_MS);
            this.observeWaits.set(req, (r) => (clearTimeout(timer), resolve(r)));
            t.send({ t: 'observe', req });
          }),
      ),
    );
    const reports = answers.filter((r): r is WorkerReport => r !== undefined);
    return { workers: targets.map((t) => t.info), reports, missing: answers.length - reports.length };
  }

  /** logrotate: every worker reopens maillog_file. */
  reopenLogs(): void {
    const q = this.qmgr;
    if (q?.connected) q.send({ t: 'reopen' } satisfies ToWorker);
    for (const w of this.smtpd) this.toSmtpd(w, { t: 'reopen' });
  }

  // ---------------------------------------------------------------- restarts

  /** Restart a dead worker: at once when it had been serving, throttled when it died starting. */
  private restart(name: string, wasServing: boolean, start: () => Promise<void>): void {
    const delay = wasServing ? 0 : this.config.time('service_throttle_time') * 1000;
    if (!wasServing) this.log.warning(`${name}: bad command startup -- throttling`);
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.stopping) return;
      start().catch((err: Error) => this.log.error(`${name}: restart failed: ${err.message}`));
    }, delay);
    this.timers.add(t);
  }

  // ---------------------------------------------------------------- reload and stop

  /** A new generation of smtpd workers on the new configuration, then the old one finishes. */
  async reload(next: LoadedConfig): Promise<void> {
    this.loaded = next;
    const old = [...this.smtpd];
    await this.startGeneration(false);
    // The old generation finishes its sessions (however long they last) and then exits.
    for (const w of old) {
      w.stopping = true;
      this.toSmtpd(w, { t: 'retire' });
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.anvilPruner);
    for (const t of this.timers) clearTimeout(t);
    await Promise.all([...this.smtpd].map((w) => this.stopWorker(w.worker.process, () => this.toSmtpd(w, { t: 'stop' }))));
    const q = this.qmgr;
    if (q) await this.stopWorker(q, () => (q.connected ? q.send({ t: 'stop' } satisfies ToQmgr) : q.kill('SIGTERM')));
  }

  /** Ask a worker to stop, wait for it (bounded), then kill it. */
  private stopWorker(proc: Proc, ask: () => void): Promise<void> {
    if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const kill = setTimeout(() => proc.kill('SIGKILL'), STOP_LIMIT_MS);
      proc.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      ask();
    });
  }
}
