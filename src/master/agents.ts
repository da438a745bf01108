// Delivery agents: Postfix's queue manager hands each delivery to an smtp(8) process, so that
// deliveries use every core while scheduling stays in one place. Backstop's queue manager hands
// them to worker threads of its own process (agent.ts): the scheduling, the destination watch and
// the per-destination limits stay in the queue manager's main thread, exactly once; the threads
// read the message, speak SMTP and log the result. Threads rather than processes: a job and its
// result cross a MessagePort, not a pipe (no serialisation to text, no system call per message),
// the threads run as the same unprivileged user the queue manager already runs as, and a thread
// that dies takes only its own deliveries with it (they are deferred; the thread is replaced).
//
// Connections stay under each destination's limit across threads: a destination's limit is split
// into shares, one per thread, and a thread gets a delivery for a destination only while it has
// fewer deliveries there than its share — its cached connections never outnumber its share.
// Threads start on the first delivery and leave after max_idle without work, as smtp(8)
// processes do, so an idle server holds none. Trusts agent.ts for the delivery itself.

import { Worker } from 'node:worker_threads';
import type { ConfigTexts } from '../config/index.js';
import { maillog, type Logger, type Severity } from '../log/index.js';
import { replayObservation, type AgentObservation } from '../observe/index.js';
import type { DeliveryOptions, OutboundMessage, RecipientResult } from '../smtp/index.js';
import type { DeliveryRoute } from '../qmgr/index.js';

/** What an agent thread needs to build its own delivery client: the configuration. */
export interface AgentData {
  configDir: string;
  texts?: ConfigTexts;
}

/** A delivery as it crosses to a thread: the message without its content reader, and its file. */
export type AgentJob = Omit<OutboundMessage, 'body'> & { path: string };

/** Main thread → agent: deliveries to make, or stop. */
export type ToAgent = { t: 'jobs'; jobs: Array<{ n: number; job: AgentJob }> } | { t: 'stop' };

/** Agent → main thread, batched per turn of its event loop. */
export type FromAgent = { t: 'out'; items: AgentOut[] };

export type AgentOut =
  | { k: 'log'; service: string; severity: Severity; text: string }
  | { k: 'obs'; o: AgentObservation }
  | { k: 'done'; n: number; results: RecipientResult[] }
  | { k: 'failed'; n: number; error: string };

export interface AgentPoolOptions {
  /** Number of threads. */
  count: number;
  data: AgentData;
  /** max_idle: a thread without work for this long leaves (ms). */
  maxIdleMs: number;
  log?: Logger;
  /** service_throttle_time: how long a thread that failed at start is not started again (ms). */
  throttleMs: number;
}

interface Pending {
  resolve: (r: RecipientResult[]) => void;
  reject: (e: Error) => void;
  dest: string;
}

class Agent {
  worker: Worker | null = null;
  readonly pending = new Map<number, Pending>();
  readonly perDest = new Map<string, number>();
  outbox: Array<{ n: number; job: AgentJob }> = [];
  idle: NodeJS.Timeout | null = null;
  started = 0;
  /** The thread finished at least one delivery (a later death is not a start-up failure). */
  worked = false;
  throttledUntil = 0;
}

/** A thread running agent.js (from the TypeScript sources under tsx: agent.ts, loader first). */
function startThread(data: AgentData): Worker {
  const opts = { workerData: data, stdout: false, stderr: false };
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./agent.js', import.meta.url), opts);
  const script = new URL('./agent.ts', import.meta.url).href;
  const boot = `import('tsx/esm/api').then((m) => m.register()).then(() => import(${JSON.stringify(script)}))`;
  return new Worker(boot, { ...opts, eval: true });
}

export class DeliveryAgents {
  private readonly agents: Agent[];
  private readonly log: Logger;
  private seq = 0;
  private closed = false;

  constructor(private readonly opts: AgentPoolOptions) {
    this.agents = Array.from({ length: Math.max(1, opts.count) }, () => new Agent());
    this.log = opts.log ?? maillog.logger('qmgr');
  }

  /** The queue manager's DeliverFn: one delivery, made by a thread. */
  readonly deliver = (out: OutboundMessage, _opts: DeliveryOptions, route?: DeliveryRoute): Promise<RecipientResult[]> => {
    if (this.closed) return Promise.reject(new Error('delivery agents are stopping'));
    if (!out.path) return Promise.reject(new Error('delivery agent needs the queue file'));
    const dest = route?.key ?? '';
    const i = this.choose(dest, route?.limit ?? 0);
    const agent = this.agents[i];
    const n = ++this.seq;
    const { body: _body, ...rest } = out;
    return new Promise<RecipientResult[]>((resolve, reject) => {
      agent.pending.set(n, { resolve, reject, dest });
      agent.perDest.set(dest, (agent.perDest.get(dest) ?? 0) + 1);
      if (agent.idle) clearTimeout(agent.idle), (agent.idle = null);
      if (!agent.worker) {
      if (Date.now() < agent.throttledUntil) return Promise.reject(new Error('unknown mail transport error'));
      this.spawn(agent);
    }
      if (agent.outbox.length === 0) setImmediate(() => this.flush(agent));
      agent.outbox.push({ n, job: { ...rest, path: out.path! } });
    });
  };

  /** Threads running now (tests, status). */
  get running(): number {
    return this.agents.filter((a) => a.worker).length;
  }

  /** Stop every thread: each closes its cached connections (QUIT) first; bounded by `ms`. */
  async close(ms = 5000): Promise<void> {
    this.closed = true;
    await Promise.all(
      this.agents.map(async (a) => {
        if (a.idle) clearTimeout(a.idle);
        const w = a.worker;
        if (!w) return;
        const gone = new Promise<void>((r) => w.once('exit', () => r()));
        w.postMessage({ t: 'stop' } satisfies ToAgent);
        const t = setTimeout(() => void w.terminate(), ms);
        await gone;
        clearTimeout(t);
      }),
    );
  }

  /**
   * The thread for a delivery to `dest`: among those under their share of the destination's
   * limit, the one with the fewest deliveries there (ties: the lower number, whose connections
   * are warm); all at their share (the limit changed): the least loaded.
   */
  private choose(dest: string, limit: number): number {
    const n = this.agents.length;
    let best = -1;
    let bestLoad = Infinity;
    for (let i = 0; i < n; i++) {
      const load = this.agents[i].perDest.get(dest) ?? 0;
      const share = limit > 0 ? Math.floor(limit / n) + (i < limit % n ? 1 : 0) : Infinity;
      if (load < share && load < bestLoad) (best = i), (bestLoad = load);
    }
    if (best >= 0) return best;
    for (let i = 0; i < n; i++) {
      const load = this.agents[i].perDest.get(dest) ?? 0;
      if (load < bestLoad) (best = i), (bestLoad = load);
    }
    return best;
  }

  private flush(agent: Agent): void {
    if (!agent.outbox.length || !agent.worker) return;
    const jobs = agent.outbox;
    agent.outbox = [];
    agent.worker.postMessage({ t: 'jobs', jobs } satisfies ToAgent);
  }

  private spawn(agent: Agent): void {
    const w = startThread(this.opts.data);
    const id = w.threadId;
    agent.worker = w;
    agent.started = Date.now();
    w.on('message', (m: FromAgent) => {
      if (m.t === 'out') for (const item of m.items) this.received(agent, item);
    });
    w.on('error', (err) => this.log.warning(`delivery agent thread ${id}: ${err.message}`));
    w.on('exit', (code) => {
      // A thread retired when idle was already replaced (or has nothing left): nothing to clear.
      if (agent.worker !== w) return;
      agent.worker = null;
      const lost = [...agent.pending.values()];
      agent.pending.clear();
      agent.perDest.clear();
      agent.outbox = [];
      if (code !== 0 && !agent.worked) {
        // Postfix's master throttles a service whose process dies before doing any work.
        agent.throttledUntil = Date.now() + this.opts.throttleMs;
        this.log.warning(`delivery agent thread ${id} failed before its first delivery: throttling for ${Math.round(this.opts.throttleMs / 1000)}s`);
      } else if (lost.length) {
        this.log.warning(`delivery agent thread ${id} exited with status ${code} during ${lost.length} deliveries`);
      }
      for (const p of lost) p.reject(new Error('unknown mail transport error'));
    });
  }

  private received(agent: Agent, item: AgentOut): void {
    switch (item.k) {
      case 'log':
        maillog.write(item.service, item.severity, item.text);
        return;
      case 'obs':
        replayObservation(item.o);
        return;
    }
    agent.worked = true;
    const p = agent.pending.get(item.n);
    if (!p) return;
    agent.pending.delete(item.n);
    const left = (agent.perDest.get(p.dest) ?? 1) - 1;
    if (left > 0) agent.perDest.set(p.dest, left);
    else agent.perDest.delete(p.dest);
    if (item.k === 'done') p.resolve(item.results);
    else p.reject(new Error(item.error));
    if (agent.pending.size === 0 && !this.closed) {
      agent.idle = setTimeout(() => {
        agent.idle = null;
        if (agent.pending.size || !agent.worker) return;
        // Detached first: a delivery arriving while it winds down starts a new thread.
        const w = agent.worker;
        agent.worker = null;
        w.postMessage({ t: 'stop' } satisfies ToAgent);
      }, this.opts.maxIdleMs);
      agent.idle.unref();
    }
  }
}
