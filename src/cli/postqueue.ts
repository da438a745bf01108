// postqueue(1) and mailq(1): list the queue (-p, -j; read-only, straight from the queue files, so
// it works whether or not the server runs) and ask the running server to flush (-f, -s site)
// through the control socket. With the PostgreSQL store both act on the cluster's queue in the
// database instead (pgqueue.ts): listing with lease holders, flush with NOTIFY. Messages and exit codes are Postfix's (EX_USAGE 64,
// EX_UNAVAILABLE 69). Trusts the queue files only through the queue module's checks.

import { invoke, type CommandSpec, type ParsedArgs } from './args.js';
import { listQueue, formatMailq, formatJson } from '../queue/index.js';
import { controlRequest, controlSocketPath, ControlUnavailableError, type ControlRequest } from '../control/index.js';
import { flushPg, listPgQueue } from '../queue/pg/index.js';
import { flushEligible, withQueueDatabase, type PgStoreIo } from './pgqueue.js';

export interface QueueCommandIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  configDir: string;
  queueDirectory: string;
  /** Standard input, for postsuper's "-" (queue IDs one per line). */
  stdin?: AsyncIterable<Buffer | string>;
  /** Standard error is a terminal: long operations show a progress bar there. */
  tty?: boolean;
  /** backstop_queue_store = postgres:FILE: the commands act on the cluster's queue in the database. */
  pgStore?: PgStoreIo;
}

const EX_USAGE = 64;
const EX_UNAVAILABLE = 69;
const EX_SOFTWARE = 70;

const USAGE = 'usage: postqueue -f | postqueue -j | postqueue -p | postqueue -s site';

function fatal(io: QueueCommandIo, prog: string, text: string, code: number): number {
  io.stderr.write(`${prog}: fatal: ${text}\n`);
  return code;
}

export const postqueueSpec: CommandSpec = {
  name: 'postqueue',
  summary: 'list (-p, -j) or flush (-f, -s site) the mail queue',
  synopsis: '[-c DIR] -p | -j | -f | -s site',
  options: {
    print: { type: 'boolean', short: 'p', help: 'list the queue in Postfix\'s (sendmail) format' },
    json: { type: 'boolean', short: 'j', help: 'list the queue as JSON, one message per line' },
    flush: { type: 'boolean', short: 'f', help: 'deliver all queued mail now (asks the running server; with the PostgreSQL store, every node through the database)' },
    site: { type: 'string', short: 's', value: 'SITE', help: 'deliver queued mail for SITE now (as ETRN)' },
    verbose: { type: 'boolean', short: 'v', multiple: true, help: 'accepted for compatibility; no effect' },
  },
  usageError: (message, err) => (err(`postqueue: fatal: ${message}; ${USAGE}\n`), EX_USAGE),
};

export const mailqSpec: CommandSpec = {
  name: 'mailq',
  summary: 'list the mail queue (postqueue -p)',
  synopsis: '[-c DIR]',
  options: { verbose: { type: 'boolean', short: 'v', multiple: true, help: 'accepted for compatibility; no effect' } },
  usageError: (message, err) => (err(`mailq: fatal: ${message}; usage: mailq\n`), EX_USAGE),
};

export async function runPostqueue(args: ParsedArgs, io: QueueCommandIo): Promise<number> {
  const v = args.values as { print?: boolean; json?: boolean; flush?: boolean; site?: string };
  const modes = [v.print && 'p', v.json && 'j', v.flush && 'f', v.site !== undefined && 's'].filter(Boolean) as ('p' | 'j' | 'f' | 's')[];
  if (modes.length !== 1 || args.positionals.length) return fatal(io, 'postqueue', USAGE, EX_USAGE);
  const mode = modes[0];
  const site = v.site ?? '';
  if (io.pgStore) return postqueuePg(mode, site, io, io.pgStore);
  switch (mode) {
    case 'p':
      io.stdout.write(formatMailq(listQueue(io.queueDirectory)));
      return 0;
    case 'j':
      io.stdout.write(formatJson(listQueue(io.queueDirectory)));
      return 0;
    case 'f':
    case 's': {
      const req: ControlRequest = mode === 'f' ? { op: 'flush' } : { op: 'flush-site', site };
      try {
        const res = await controlRequest(controlSocketPath(io.queueDirectory), req);
        if (!res.ok) return fatal(io, 'postqueue', `server error: ${res.error}`, EX_SOFTWARE);
        if (res.flush === 'bad') return fatal(io, 'postqueue', `Invalid request: "${site}"`, EX_USAGE);
        if (res.flush === 'deny') return fatal(io, 'postqueue', `Flush service is not configured for destination "${site}"`, EX_UNAVAILABLE);
        return 0;
      } catch (err) {
        if (err instanceof ControlUnavailableError) return fatal(io, 'postqueue', 'Cannot flush mail queue - mail system is down', EX_UNAVAILABLE);
        return fatal(io, 'postqueue', err instanceof Error ? err.message : String(err), EX_SOFTWARE);
      }
    }
  }
}

/** The same on the PostgreSQL store: the database directly, the same messages and exit codes. */
async function postqueuePg(mode: 'p' | 'j' | 'f' | 's', site: string, io: QueueCommandIo, store: PgStoreIo): Promise<number> {
  try {
    if (mode === 'p' || mode === 'j') {
      const list = await withQueueDatabase(store, (db) => listPgQueue(db));
      io.stdout.write(mode === 'p' ? formatMailq(list) : formatJson(list));
      return 0;
    }
    const r = await withQueueDatabase(store, (db) => flushPg(db, mode === 's' ? site : undefined, flushEligible(store)));
    if (r.status === 'bad') return fatal(io, 'postqueue', `Invalid request: "${site}"`, EX_USAGE);
    if (r.status === 'deny') return fatal(io, 'postqueue', `Flush service is not configured for destination "${site}"`, EX_UNAVAILABLE);
    return 0;
  } catch (err) {
    return fatal(io, 'postqueue', err instanceof Error ? err.message : String(err), EX_UNAVAILABLE);
  }
}

/** mailq: the same listing as postqueue -p. */
export async function runMailq(args: ParsedArgs, io: QueueCommandIo): Promise<number> {
  if (args.positionals.length) return fatal(io, 'mailq', 'usage: mailq', EX_USAGE);
  return runPostqueue({ values: { print: true }, positionals: [] }, io);
}

/** `postqueue ARGS...` as typed on the command line. */
export function postqueueCommand(argv: string[], io: QueueCommandIo): Promise<number> {
  return invoke(postqueueSpec, argv, { stdout: (t) => io.stdout.write(t), stderr: (t) => io.stderr.write(t) }, (args) => runPostqueue(args, io));
}

/** `mailq ARGS...` as typed on the command line. */
export function mailqCommand(argv: string[], io: QueueCommandIo): Promise<number> {
  return invoke(mailqSpec, argv, { stdout: (t) => io.stdout.write(t), stderr: (t) => io.stderr.write(t) }, (args) => runMailq(args, io));
}
