// postqueue(1) and mailq(1): list the queue (-p, -j; read-only, straight from the queue files, so
// it works whether or not the server runs) and ask the running server to flush (-f, -s site)
// through the control socket. Messages and exit codes are Postfix's (EX_USAGE 64,
// EX_UNAVAILABLE 69). Trusts the queue files only through the queue module's checks.

import { listQueue, formatMailq, formatJson } from '../queue/index.js';
import { controlRequest, controlSocketPath, ControlUnavailableError, type ControlRequest } from '../master/control.js';

export interface CommandIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  configDir: string;
  queueDirectory: string;
  /** Standard input, for postsuper's "-" (queue IDs one per line). */
  stdin?: AsyncIterable<Buffer | string>;
}

const EX_USAGE = 64;
const EX_UNAVAILABLE = 69;
const EX_SOFTWARE = 70;

const USAGE = 'usage: postqueue -f | postqueue -j | postqueue -p | postqueue -s site';

function fatal(io: CommandIo, prog: string, text: string, code: number): number {
  io.stderr.write(`${prog}: fatal: ${text}\n`);
  return code;
}

export async function postqueueCommand(argv: string[], io: CommandIo): Promise<number> {
  let mode = null as 'p' | 'j' | 'f' | 's' | null;
  let site = '';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const setMode = (m: typeof mode) => {
      if (mode && mode !== m) return false;
      mode = m;
      return true;
    };
    if (a === '-c') {
      if (++i >= argv.length) return fatal(io, 'postqueue', USAGE, EX_USAGE);
    } else if (a === '-v') continue;
    else if (a === '-p' || a === '-j' || a === '-f') {
      if (!setMode(a[1] as 'p' | 'j' | 'f')) return fatal(io, 'postqueue', USAGE, EX_USAGE);
    } else if (a === '-s') {
      if (++i >= argv.length || !setMode('s')) return fatal(io, 'postqueue', USAGE, EX_USAGE);
      site = argv[i];
    } else return fatal(io, 'postqueue', USAGE, EX_USAGE);
  }
  switch (mode as 'p' | 'j' | 'f' | 's' | null) {
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
    default:
      return fatal(io, 'postqueue', USAGE, EX_USAGE);
  }
}

/** mailq: the same listing as postqueue -p. */
export async function mailqCommand(argv: string[], io: CommandIo): Promise<number> {
  for (const a of argv) {
    if (a !== '-v') return fatal(io, 'mailq', 'usage: mailq', EX_USAGE);
  }
  return postqueueCommand(['-p'], io);
}
