// A worker process of the mail system, started by the master (workers.ts) and never by hand:
// - `qmgr`: the one queue manager — the queue side (queue with its lock and index, delivery,
//   bounces, the destination watch, the control socket). It adopts the messages smtpd workers
//   announce, answers their ETRN flushes and tells them when a destination is back.
// - `smtpd`: one of several SMTP servers sharing the master's listening sockets (Node's cluster
//   module: the master binds, the workers accept). Each writes the mail it accepts into the queue
//   itself (QueueWriter, durable before 250; or PgQueueStore, committed in the shared PostgreSQL
//   queue before 250) and announces it to the queue manager.
// Started by a root master, a worker opens what only root may read (main.cf, tables, TLS keys,
// the verify cache) and then changes to mail_owner for good, before it serves anything — as
// Postfix's daemons do after their initialization. It ignores SIGINT (a terminal's Ctrl-C reaches the whole process group; the master stops the
// workers in order) and stops cleanly on SIGTERM or the master's `stop`; it exits when the
// master goes away. Trusts the master: the configuration was validated before it started.

import { EventEmitter } from 'node:events';
import { loadConfig, type LoadedConfig } from '../config/index.js';
import { maillog } from '../log/index.js';
import { QueueWriter, type QueueEntry } from '../queue/index.js';
import { onTableChange } from '../tables/index.js';
import type { AnvilVerdict, ConnectionCounter } from '../smtpd/index.js';
import { configPath, openMaillog } from './paths.js';
import { PgQueueStore } from '../queue/pg/index.js';
import { faultHook, pgQueueConfig, startQueueSide } from './queueside.js';
import { startSmtpdSide } from './smtpdside.js';
import { observeQueueSide, observeSmtpdSide } from './observeside.js';
import { WORKER_ENV, type QmgrMessage, type SmtpdMessage, type ToQmgr, type ToSmtpd } from './ipc.js';

/** How long an ETRN waits for the queue manager's answer before it counts as "not now". */
const FLUSH_ANSWER_MS = 10_000;
/** How long a new connection waits for the master's anvil. */
const ANVIL_ANSWER_MS = 1_000;
/** The longest a stop may take (the master kills a worker after 30 s anyway). */
const STOP_LIMIT_MS = 25_000;
/** The longest a worker outlives its master. */
const ORPHAN_LIMIT_MS = 5_000;

/** Become mail_owner for good (group first: after setuid the process may not change it). */
function dropPrivileges(): void {
  const spec = process.env[WORKER_ENV.owner];
  if (!spec) return;
  const [uid, gid] = spec.split(':').map(Number);
  process.setgroups?.([gid]);
  process.setgid!(gid);
  process.setuid!(uid);
}

/**
 * What a worker tells the master in passing (anvil's counts without a limit to enforce, accepted
 * mail) goes as one message per turn of the event loop: a connection per message would otherwise
 * cost two messages, each a write here and a read and a parse in the master. Anything else is
 * sent at once, after what is waiting, so the order is kept.
 */
const IN_PASSING = new Set<string>(['anvil-disconnect', 'accepted']);
let waiting: SmtpdMessage[] = [];

function send(m: SmtpdMessage | QmgrMessage): void {
  if (!process.connected) return;
  if (IN_PASSING.has(m.t) || (m.t === 'anvil-connect' && m.req === 0)) {
    if (!waiting.length) setImmediate(sendWaiting);
    waiting.push(m as SmtpdMessage);
    return;
  }
  sendWaiting();
  process.send!(m);
}

function sendWaiting(): void {
  if (!waiting.length) return;
  const messages = waiting;
  waiting = [];
  if (process.connected) process.send!(messages.length === 1 ? messages[0] : { t: 'batch', messages } satisfies SmtpdMessage);
}

/**
 * Stop once: on the master's word (stop, or retire after a reload), on SIGTERM, or when the
 * master is gone. Every stop has a limit: a worker whose master died exits within
 * ORPHAN_LIMIT_MS whatever it was doing (its successor needs the queue lock), any other within
 * STOP_LIMIT_MS once its sessions are done or cut.
 */
function onStop(stop: (retire: boolean) => Promise<void>, hurry: () => void = () => undefined): void {
  let stopping: Promise<void> | undefined;
  let retiring = false;
  const exit = async (code: number) => {
    await maillog.close();
    process.exit(code);
  };
  const go = (retire = false, limitMs = STOP_LIMIT_MS) => {
    // A stop while retiring: the remaining sessions get the ordinary stop's grace, not forever.
    if (stopping && retiring && !retire) hurry();
    if (!retire) setTimeout(() => void exit(1), limitMs).unref();
    retiring ||= retire && !stopping;
    stopping ??= stop(retire)
      .catch((err: Error) => maillog.logger('master').error(`worker stop: ${err.message}`))
      .finally(() => exit(0));
  };
  process.on('SIGINT', () => undefined);
  process.once('SIGTERM', () => go());
  process.once('disconnect', () => go(false, ORPHAN_LIMIT_MS));
  // Should the IPC channel outlive the master (a copy of its end elsewhere), the parent still changes.
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && go(false, ORPHAN_LIMIT_MS), 1000).unref();
  process.on('message', (m: { t?: string }) => {
    if (m?.t === 'stop' || m?.t === 'retire') go(m.t === 'retire');
  });
}

/** The configuration the master validated (its texts come with the environment). */
function workerConfig(configDir: string): LoadedConfig {
  const main = process.env[WORKER_ENV.mainCf];
  const master = process.env[WORKER_ENV.masterCf];
  return loadConfig(configDir, main !== undefined && master !== undefined ? { main, master } : undefined);
}

async function runQmgr(configDir: string): Promise<void> {
  const { config, texts } = workerConfig(configDir);
  openMaillog(config);
  const side = await startQueueSide(config, texts);
  side.qmgr.on('destinationUp', (domain, nexthop) => send({ t: 'destination-up', domain, nexthop }));
  const report = observeQueueSide(config, side.queue, side.qmgr);
  process.on('message', (m: ToQmgr) => {
    switch (m.t) {
      case 'accepted':
        for (const e of m.entries) side.queue.adopt(e);
        break;
      case 'flush':
        side.flushDomain(m.domain).then(
          (ok) => send({ t: 'flushed', req: m.req, ok }),
          () => send({ t: 'flushed', req: m.req, ok: false }),
        );
        break;
      case 'watch':
        void side.qmgr.watchAddress(m.address);
        break;
      case 'observe':
        void report().then((r) => send({ t: 'observed', req: m.req, report: r }));
        break;
      case 'reopen':
        maillog.reopen();
        break;
    }
  });
  onStop(() => side.stop());
  dropPrivileges();
  send({ t: 'ready' });
}

/** The shared queue's store is ready, or `ms` have passed. */
async function waitReady(store: PgQueueStore, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([store.whenReady(), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

async function runSmtpd(configDir: string, slot: number): Promise<void> {
  const loaded = workerConfig(configDir);
  const { config } = loaded;
  openMaillog(config);
  // Commits that complete together (one shared directory fsync) go to the queue manager as one message.
  let batch: QueueEntry[] | null = null;
  const announce = (entry: QueueEntry) => {
    if (batch) return void batch.push(entry);
    batch = [entry];
    setImmediate(() => {
      const entries = batch!;
      batch = null;
      send({ t: 'accepted', entries });
    });
  };
  const pgConfig = pgQueueConfig(config);
  // The shared queue: the database need not answer now (451 4.3.0 until it does).
  const writer = pgConfig
    ? PgQueueStore.start({ config: pgConfig, nodeName: config.str('myhostname'), slot, messageSizeLimit: config.size('message_size_limit'), maillog, onCommitted: (entry) => announce(entry) })
    : new QueueWriter({
        queueDirectory: configPath(config, 'queue_directory'),
        slot,
        messageSizeLimit: config.size('message_size_limit'),
        recycleLimit: config.int('backstop_queue_file_recycle_limit'),
        maillog,
        wrapWrite: faultHook(),
        onCommitted: (entry) => announce(entry),
      });
  // A reachable database is ready before the first session (else its first senders get 451);
  // one that is away is not waited for longer than a connection attempt (451 until it returns).
  if (writer instanceof PgQueueStore) await waitReady(writer, pgConfig!.connectTimeoutMs);
  const destinations = new EventEmitter();
  const flushes = new Map<number, (ok: boolean) => void>();
  const anvilAnswers = new Map<number, (v: AnvilVerdict) => void>();
  let req = 0;
  process.on('message', (m: ToSmtpd) => {
    if (m.t === 'flushed') {
      flushes.get(m.req)?.(m.ok);
      flushes.delete(m.req);
    } else if (m.t === 'anvil') {
      anvilAnswers.get(m.req)?.(m.verdict);
      anvilAnswers.delete(m.req);
    } else if (m.t === 'destination-up') destinations.emit('destinationUp', m.domain, m.nexthop);
    else if (m.t === 'observe') void report().then((r) => send({ t: 'observed', req: m.req, report: r }));
    else if (m.t === 'reopen') maillog.reopen();
  });
  let report = observeSmtpdSide();
  // The master's anvil counts this client's connections in every worker. When it does not
  // answer in time the connection is let through, as smtpd does when anvil is unavailable.
  const anvil: ConnectionCounter = {
    connect: (ip, limits) => {
      // No limit to enforce: the master only counts; the session need not wait for its answer.
      if (limits.count <= 0 && limits.rate <= 0) {
        send({ t: 'anvil-connect', req: 0, ip, limits });
        return Promise.resolve({ ok: true, count: 0, rate: 0 });
      }
      return new Promise<AnvilVerdict>((resolve) => {
        const id = ++req;
        const timer = setTimeout(() => anvilAnswers.delete(id) && resolve({ ok: true, count: 0, rate: 0 }), ANVIL_ANSWER_MS);
        anvilAnswers.set(id, (v) => (clearTimeout(timer), resolve(v)));
        send({ t: 'anvil-connect', req: id, ip, limits });
      });
    },
    disconnect: (ip) => send({ t: 'anvil-disconnect', ip }),
  };
  const side = await startSmtpdSide(loaded, {
    queue: writer,
    flusher: {
      flushDomain: (domain) =>
        new Promise<boolean>((resolve) => {
          const id = ++req;
          const timer = setTimeout(() => flushes.delete(id) && resolve(false), FLUSH_ANSWER_MS);
          flushes.set(id, (ok) => (clearTimeout(timer), resolve(ok)));
          send({ t: 'flush', req: id, domain });
        }),
    },
    watchAddress: (address) => send({ t: 'watch', address }),
    destinationEvents: destinations,
    anvil,
    // One worker runs the verify sync, so each address is probed once per interval.
    verifySync: process.env[WORKER_ENV.verifySync] === '1',
  });
  // The verify cache is counted by one worker (they share it).
  if (process.env[WORKER_ENV.verifySync] === '1') report = observeSmtpdSide(side.store);
  onStop(
    async (retire) => {
      await side.stop({ retire });
      await writer.close();
    },
    () => void side.smtpd.close(),
  );
  // A table file changed: the new one is opened by a fresh worker, which starts with the
  // privileges to read it (Postfix: "table ... has changed -- restarting"). This one retires.
  onTableChange((path) => {
    if (!process.env[WORKER_ENV.owner]) return;
    maillog.logger('smtpd').info(`table ${path} has changed -- restarting`);
    send({ t: 'replace' });
  });
  // Still in the tick that finished listening: no connection has been served yet.
  dropPrivileges();
  send({ t: 'ready', addresses: side.smtpd.addresses() });
}

/** The worker's main: its role, configuration and slot come from the environment (ipc.ts). */
export async function runWorker(): Promise<void> {
  const role = process.env[WORKER_ENV.role];
  const configDir = process.env[WORKER_ENV.configDir] ?? '';
  try {
    if (role === 'qmgr') await runQmgr(configDir);
    else if (role === 'smtpd') await runSmtpd(configDir, Number(process.env[WORKER_ENV.slot] ?? '1'));
    else throw new Error(`unknown worker role ${JSON.stringify(role)}`);
  } catch (err) {
    // The master says why it cannot start in its own words: tell it the reason.
    send({ t: 'failed', message: (err as Error).message });
    maillog.logger(role ?? 'master').fatal(`${role} worker: ${(err as Error).message}`);
    await maillog.close();
    process.exit(1);
  }
}

if (process.env[WORKER_ENV.role]) void runWorker();
