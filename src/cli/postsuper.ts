// postsuper(1): delete (-d), hold (-h), release (-H) and requeue (-r) messages by queue ID or ALL,
// optionally limited to named queues. While the server runs, the request goes through its control
// socket so the server's in-memory state and the files change together. When no server answers,
// the command takes the queue lock and works on the files itself. With the PostgreSQL store
// (backstop_queue_store = postgres:FILE) it acts on the cluster's queue in the database, from any
// node, server or not (pgqueue.ts, src/queue/pg/admin.ts). Output follows Postfix:
// "postsuper: ID: removed" per ID, then "postsuper: Deleted: N message(s)", on standard error.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Queue, QueueLockedError, acquireQueueLock, applyAdmin, isValidQueueId, ADMIN_DEFAULT_QUEUES, ADMIN_DONE_TEXT, QUEUE_NAMES } from '../queue/index.js';
import type { AdminOp, AdminResult, AdminSelection, QueueName } from '../queue/index.js';
import { Maillog } from '../log/index.js';
import { controlRequest, controlSocketPath, ControlUnavailableError } from '../control/index.js';
import type { QueueCommandIo } from './postqueue.js';
import { invoke, type CommandSpec, type ParsedArgs } from './args.js';
import { startProgress } from './progress.js';
import { applyPgAdmin } from '../queue/pg/index.js';
import { withQueueDatabase, type PgStoreIo } from './pgqueue.js';

const USAGE =
  'usage: postsuper [-c config_dir] [-d queue_id (delete)] [-h queue_id (hold)] [-H queue_id (un-hold)] ' +
  '[-r queue_id (requeue)] [-v (verbose)] [queue...]';

const FLAG_OP: Record<string, AdminOp> = { '-d': 'delete', '-h': 'hold', '-H': 'release', '-r': 'requeue' };
/** Postfix's order: mass operations first, then by ID: delete, requeue, hold, release. */
const OP_ORDER: AdminOp[] = ['delete', 'requeue', 'hold', 'release'];
const TOTAL_TEXT: Record<AdminOp, string> = { requeue: 'Requeued', delete: 'Deleted', hold: 'Placed on hold', release: 'Released from hold' };
const REPORT_ORDER: AdminOp[] = ['requeue', 'delete', 'hold', 'release'];

export const postsuperSpec: CommandSpec = {
  name: 'postsuper',
  summary: 'delete (-d), hold (-h), release (-H) or requeue (-r) queued mail: ID | ALL | - (IDs on standard input)',
  synopsis: '[-c DIR] [-d ID] [-h ID] [-H ID] [-r ID] [queue ...]',
  options: {
    delete: { type: 'string', short: 'd', multiple: true, value: 'ID', help: 'delete the message (ALL: every message; -: IDs from standard input)' },
    hold: { type: 'string', short: 'h', multiple: true, value: 'ID', help: 'put the message on hold' },
    release: { type: 'string', short: 'H', multiple: true, value: 'ID', help: 'release the message from hold' },
    requeue: { type: 'string', short: 'r', multiple: true, value: 'ID', help: 'requeue the message (deliver again from scratch)' },
    verbose: { type: 'boolean', short: 'v', multiple: true, help: 'accepted for compatibility; no effect' },
  },
  description: 'Queue names (incoming, active, deferred, hold, corrupt) after the options limit the operation to those queues.',
  usageError: (message, err) => (err(`postsuper: fatal: ${message}; ${USAGE}\n`), 1),
};

export async function runPostsuper(args: ParsedArgs, io: QueueCommandIo): Promise<number> {
  const err = (s: string) => io.stderr.write(`postsuper: ${s}\n`);
  const v = args.values as Partial<Record<AdminOp, string[]>>;
  const names: Record<AdminOp, string[]> = { delete: v.delete ?? [], hold: v.hold ?? [], release: v.release ?? [], requeue: v.requeue ?? [] };
  const queues: QueueName[] = [];
  for (const q of args.positionals) {
    if (!(QUEUE_NAMES as readonly string[]).includes(q)) return (err(`fatal: invalid directory name: ${q}`), 1);
    queues.push(q as QueueName);
  }

  // Resolve each operation to a selection: ALL wins over IDs (with Postfix's warning); "-" reads stdin.
  const plan: { op: AdminOp; sel: AdminSelection }[] = [];
  for (const op of OP_ORDER) {
    const list = names[op];
    if (list.length === 0) continue;
    if (list.includes('ALL')) {
      if (list.some((x) => x !== 'ALL')) err(`warning: option "${Object.keys(FLAG_OP).find((k) => FLAG_OP[k] === op)} ALL" will ignore other command line queue IDs`);
      plan.push({ op, sel: { ids: 'ALL', queues } });
      continue;
    }
    const ids: string[] = [];
    for (const id of list) {
      if (id === '-') {
        if (io.stdin) for (const l of (await readAll(io.stdin)).split('\n')) if (l.trim()) ids.push(l.trim());
        continue;
      }
      ids.push(id);
    }
    const valid: string[] = [];
    for (const id of ids) {
      if (isValidQueueId(id)) valid.push(id);
      else err(`warning: invalid mail queue id: ${id}`);
    }
    plan.push({ op, sel: { ids: valid, queues } });
  }
  // Mass operations run before operations by ID, as in Postfix.
  plan.sort((a, b) => Number(b.sel.ids === 'ALL') - Number(a.sel.ids === 'ALL'));
  if (plan.length === 0) return 0;

  let results: AdminResult[];
  try {
    results = io.pgStore ? await viaDatabase(io.pgStore, plan) : await viaServer(io, plan);
  } catch (e) {
    if (!(e instanceof ControlUnavailableError)) return (err(`fatal: ${e instanceof Error ? e.message : String(e)}`), 1);
    try {
      results = await direct(io, plan);
    } catch (e2) {
      if (e2 instanceof QueueLockedError) return (err(`fatal: ${e2.message}; the server may be starting, try again`), 75);
      return (err(`fatal: ${e2 instanceof Error ? e2.message : String(e2)}`), 1);
    }
  }
  const totals: Record<AdminOp, number> = { delete: 0, hold: 0, release: 0, requeue: 0 };
  plan.forEach(({ op, sel }, n) => {
    if (sel.ids !== 'ALL') for (const id of results[n].ids) err(`${id}: ${ADMIN_DONE_TEXT[op]}`);
    totals[op] += results[n].count;
  });
  for (const op of REPORT_ORDER) {
    if (totals[op] > 0) err(`${TOTAL_TEXT[op]}: ${totals[op]} message${totals[op] > 1 ? 's' : ''}`);
  }
  return 0;
}

/** Messages per request when ALL is done in steps to show progress. */
const PROGRESS_BATCH = 200;

/** Queue IDs in the folders of the queues an ALL selection covers (corrupt/ is not indexed). */
function idsOnDisk(queueDirectory: string, op: AdminOp, sel: AdminSelection): string[] {
  const queues = sel.queues && sel.queues.length ? sel.queues : ADMIN_DEFAULT_QUEUES[op];
  const ids: string[] = [];
  for (const q of queues) {
    if (q === 'corrupt' || q === 'incoming') continue;
    try {
      for (const name of readdirSync(join(queueDirectory, q))) if (isValidQueueId(name)) ids.push(name);
    } catch {
      // A queue folder that is not there holds nothing.
    }
  }
  return ids;
}

/**
 * ALL on a terminal, with a progress bar: the messages there now, in steps of PROGRESS_BATCH IDs
 * (each step limited to the same queues), then once more those that arrived meanwhile, and with
 * -d the corrupt/ folder as ALL empties it — the same result as one ALL request. (Not ALL itself
 * at the end: a requeued message is still in deferred/ and would be requeued twice.)
 */
async function allWithProgress(path: string, io: QueueCommandIo, op: AdminOp, sel: AdminSelection): Promise<AdminResult> {
  const ids = idsOnDisk(io.queueDirectory, op, sel);
  const bar = startProgress({ write: (s) => io.stderr.write(s), tty: true, format: `postsuper: ${TOTAL_TEXT[op].toLowerCase()} [{bar}] {value}/{total} ({percentage}%, eta {eta_formatted})`, total: ids.length });
  const total: AdminResult = { ids: [], count: 0 };
  const add = (r: AdminResult) => {
    total.ids.push(...r.ids);
    total.count += r.count;
  };
  try {
    const queues = sel.queues && sel.queues.length ? sel.queues : undefined;
    const request = async (req: Parameters<typeof controlRequest>[1]) => {
      const res = await controlRequest(path, req);
      if (!res.ok) throw new Error(`server error: ${res.error}`);
      add(res.result ?? { ids: [], count: 0 });
    };
    for (let i = 0; i < ids.length; i += PROGRESS_BATCH) {
      const batch = ids.slice(i, i + PROGRESS_BATCH);
      await request({ op, ids: batch, queues });
      bar.tick(batch.length);
    }
    const seen = new Set(ids);
    const late = idsOnDisk(io.queueDirectory, op, sel).filter((id) => !seen.has(id));
    if (late.length) await request({ op, ids: late, queues });
    if (op === 'delete' && queues?.includes('corrupt')) await request({ op, ids: 'ALL', queues: ['corrupt'] });
  } finally {
    bar.stop();
  }
  return total;
}

async function viaServer(io: QueueCommandIo, plan: { op: AdminOp; sel: AdminSelection }[]): Promise<AdminResult[]> {
  const path = controlSocketPath(io.queueDirectory);
  const out: AdminResult[] = [];
  for (const { op, sel } of plan) {
    if (sel.ids === 'ALL' && io.tty) {
      out.push(await allWithProgress(path, io, op, sel));
      continue;
    }
    const res = await controlRequest(path, { op, ids: sel.ids, queues: sel.queues && sel.queues.length ? sel.queues : undefined });
    if (!res.ok) throw new Error(`server error: ${res.error}`);
    out.push(res.result ?? { ids: [], count: 0 });
  }
  return out;
}

/** The cluster's queue in the database: the same operations on the shared rows, server or not. */
function viaDatabase(store: PgStoreIo, plan: { op: AdminOp; sel: AdminSelection }[]): Promise<AdminResult[]> {
  return withQueueDatabase(store, async (db) => {
    const out: AdminResult[] = [];
    for (const { op, sel } of plan) out.push(await applyPgAdmin(db, op, sel));
    return out;
  });
}

async function direct(io: QueueCommandIo, plan: { op: AdminOp; sel: AdminSelection }[]): Promise<AdminResult[]> {
  const lock = await acquireQueueLock(io.queueDirectory, { waitMs: 2000 });
  const log = new Maillog();
  log.open(undefined, { quiet: true });
  try {
    const queue = await Queue.open({ queueDirectory: io.queueDirectory, recover: false, maillog: log });
    try {
      const out: AdminResult[] = [];
      for (const { op, sel } of plan) out.push(await applyAdmin(queue, op, sel));
      return out;
    } finally {
      await queue.close();
    }
  } finally {
    await lock.release();
  }
}

async function readAll(src: AsyncIterable<Buffer | string>): Promise<string> {
  let s = '';
  for await (const c of src) s += typeof c === 'string' ? c : c.toString('utf8');
  return s;
}

/** `postsuper ARGS...` as typed on the command line. */
export function postsuperCommand(argv: string[], io: QueueCommandIo): Promise<number> {
  return invoke(postsuperSpec, argv, { stdout: (t) => io.stdout.write(t), stderr: (t) => io.stderr.write(t) }, (args) => runPostsuper(args, io));
}
