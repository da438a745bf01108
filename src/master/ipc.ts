// The messages between the master and its workers (Node's IPC channel, one JSON object each),
// Postfix's internal protocols in small: an smtpd worker announces each message it committed
// (Postfix's cleanup → qmgr trigger), asks for ETRN flushes and destination watches, and counts
// its clients' connections with the master's anvil; the queue
// manager answers flushes and announces destinations that are back; the master routes between
// them and tells each worker to reload or stop. Plain data only; trusted (our own processes).

import type { QueueEntry } from '../queue/index.js';
import type { AnvilVerdict, ConnectionLimits } from '../smtpd/index.js';
import type { WorkerReport } from '../observe/index.js';

export type WorkerRole = 'smtpd' | 'qmgr';

/** From an smtpd worker to the master. */
export type SmtpdMessage =
  | { t: 'ready'; addresses: Array<{ host: string; port: number }> }
  | { t: 'failed'; message: string }
  /** Messages committed in one turn of the worker's event loop (group commit makes them come in batches). */
  | { t: 'accepted'; entries: QueueEntry[] }
  | { t: 'flush'; req: number; domain: string }
  | { t: 'watch'; address: string }
  /** req 0: no limit applies, the worker does not wait for an answer. */
  | { t: 'anvil-connect'; req: number; ip: string; limits: ConnectionLimits }
  | { t: 'replace' }
  | { t: 'anvil-disconnect'; ip: string }
  | { t: 'observed'; req: number; report: WorkerReport }
  /** Several of the above sent in one turn of the worker's event loop, in order. */
  | { t: 'batch'; messages: SmtpdMessage[] };

/** From the queue manager worker to the master. */
export type QmgrMessage =
  | { t: 'ready' }
  | { t: 'failed'; message: string }
  | { t: 'flushed'; req: number; ok: boolean }
  | { t: 'destination-up'; domain: string; nexthop?: string }
  | { t: 'observed'; req: number; report: WorkerReport };

/** Both kinds of worker: report yourself (metrics, status); reopen maillog_file (logrotate). */
export type ToWorker = { t: 'observe'; req: number } | { t: 'reopen' };

/** From the master to an smtpd worker (retire: a reload replaced it; finish the sessions, then exit). */
export type ToSmtpd =
  | { t: 'flushed'; req: number; ok: boolean }
  | { t: 'destination-up'; domain: string; nexthop?: string }
  | { t: 'anvil'; req: number; verdict: AnvilVerdict }
  | { t: 'stop' }
  | { t: 'retire' }
  | ToWorker;

/** From the master to the queue manager worker. */
export type ToQmgr =
  /** Messages committed in one turn of the worker's event loop (group commit makes them come in batches). */
  | { t: 'accepted'; entries: QueueEntry[] }
  | { t: 'flush'; req: number; domain: string }
  | { t: 'watch'; address: string }
  | { t: 'stop' }
  | ToWorker;

/** The environment a worker process starts with. */
export const WORKER_ENV = {
  role: 'BACKSTOP_WORKER_ROLE',
  configDir: 'BACKSTOP_WORKER_CONFIG_DIR',
  /** The smtpd worker's queue id range (QueueWriter slot). */
  slot: 'BACKSTOP_WORKER_SLOT',
  /** Set for the one smtpd worker that runs backstop_verify_sync_map's probes. */
  verifySync: 'BACKSTOP_WORKER_VERIFY_SYNC',
  /** `uid:gid` to change to once the worker has opened what only root may read (mail_owner). */
  owner: 'BACKSTOP_WORKER_OWNER',
  /** main.cf and master.cf as the master read and validated them. */
  mainCf: 'BACKSTOP_WORKER_MAIN_CF',
  masterCf: 'BACKSTOP_WORKER_MASTER_CF',
} as const;
