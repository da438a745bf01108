// The control socket: how postqueue and postsuper reach the running server, so that their changes
// go through the server's in-memory state and never race with it (no lost updates). A unix socket
// under queue_directory (public/control), one JSON request per line, one JSON response per line.
// The server trusts nothing it reads: a malformed or oversized request gets an error response.
// Whoever runs the queue manager registers the handlers; this module only carries requests.

import { createServer, createConnection, type Server, type Socket } from 'node:net';
import { mkdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { AdminOp, AdminResult, AdminSelection, QueueName } from '../queue/index.js';
import { QUEUE_NAMES } from '../queue/index.js';

export type FlushStatus = 'ok' | 'bad' | 'deny';

export type ControlRequest =
  | { op: 'flush' }
  | { op: 'flush-site'; site: string }
  | { op: AdminOp; ids: string[] | 'ALL'; queues?: QueueName[] };

export type ControlResponse =
  | { ok: true; flush?: FlushStatus; result?: AdminResult }
  | { ok: false; error: string };

export interface ControlHandlers {
  /** postqueue -f: deliver all deferred mail now. */
  flush(): Promise<void>;
  /** postqueue -s site / ETRN: deliver deferred mail for one destination now. */
  flushSite(site: string): Promise<FlushStatus>;
  delete(sel: AdminSelection): Promise<AdminResult>;
  hold(sel: AdminSelection): Promise<AdminResult>;
  release(sel: AdminSelection): Promise<AdminResult>;
  requeue(sel: AdminSelection): Promise<AdminResult>;
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/** No server answers on the socket (not running, or a stale socket file). */
export class ControlUnavailableError extends Error {
  constructor(readonly path: string, cause: string) {
    super(`control socket ${path}: ${cause}`);
    this.name = 'ControlUnavailableError';
  }
}

const MAX_LINE = 1 << 20;

export function controlSocketPath(queueDirectory: string): string {
  return join(queueDirectory, 'public', 'control');
}

const ADMIN_OPS = new Set(['delete', 'hold', 'release', 'requeue']);

/** Check a decoded request; returns an error text or null. */
export function validateRequest(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'request must be a JSON object';
  const r = v as Record<string, unknown>;
  if (r.op === 'flush') return null;
  if (r.op === 'flush-site') return typeof r.site === 'string' ? null : 'flush-site needs a site string';
  if (typeof r.op === 'string' && ADMIN_OPS.has(r.op)) {
    if (r.ids !== 'ALL' && !(Array.isArray(r.ids) && r.ids.every((x) => typeof x === 'string'))) return `${r.op} needs ids: "ALL" or a list of strings`;
    if (r.queues !== undefined && !(Array.isArray(r.queues) && r.queues.every((x) => (QUEUE_NAMES as readonly unknown[]).includes(x)))) {
      return `${r.op}: queues must be a list of queue names`;
    }
    return null;
  }
  return `unknown op: ${JSON.stringify(r.op)}`;
}

async function dispatch(h: ControlHandlers, req: ControlRequest): Promise<ControlResponse> {
  switch (req.op) {
    case 'flush':
      await h.flush();
      return { ok: true, flush: 'ok' };
    case 'flush-site':
      return { ok: true, flush: await h.flushSite(req.site) };
    default: {
      const sel: AdminSelection = { ids: req.ids, queues: req.queues };
      return { ok: true, result: await h[req.op](sel) };
    }
  }
}

/** Listen on `path` (a stale socket file is replaced; a live server there is an error). */
export async function startControlServer(path: string, handlers: ControlHandlers): Promise<ControlServer> {
  mkdirSync(dirname(path), { recursive: true });
  try {
    await controlRequestRaw(path, '', 1000);
    throw new Error(`control socket ${path}: another server is already listening`);
  } catch (err) {
    if (!(err instanceof ControlUnavailableError)) throw err;
    try {
      unlinkSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    let chain = Promise.resolve();
    sock.setEncoding('utf8');
    sock.on('data', (data: string) => {
      buf += data;
      if (buf.length > MAX_LINE && !buf.includes('\n')) {
        sock.end(JSON.stringify({ ok: false, error: 'request too long' }) + '\n');
        buf = '';
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        chain = chain.then(async () => {
          let res: ControlResponse;
          let req: unknown;
          try {
            req = JSON.parse(line);
          } catch {
            req = undefined;
          }
          const bad = req === undefined ? 'request is not valid JSON' : validateRequest(req);
          if (bad) res = { ok: false, error: bad };
          else {
            try {
              res = await dispatch(handlers, req as ControlRequest);
            } catch (err) {
              res = { ok: false, error: err instanceof Error ? err.message : String(err) };
            }
          }
          if (!sock.destroyed) sock.write(JSON.stringify(res) + '\n');
        });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function controlRequestRaw(path: string, line: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    let connected = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(connected ? new Error(`control socket ${path}: no response within ${timeoutMs} ms`) : new ControlUnavailableError(path, 'connect timed out'));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      connected = true;
      if (line) sock.write(line + '\n');
      else {
        clearTimeout(timer);
        sock.end();
        resolve('');
      }
    });
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        sock.end();
        resolve(buf.slice(0, nl));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!connected) reject(new ControlUnavailableError(path, err.code ?? err.message));
      else reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (connected && line) reject(new Error(`control socket ${path}: connection closed without a response`));
    });
  });
}

/**
 * Send one request to the server. Throws ControlUnavailableError when nobody listens (the caller
 * then works on the files directly, under the queue lock).
 */
export async function controlRequest(path: string, req: ControlRequest, opts: { timeoutMs?: number } = {}): Promise<ControlResponse> {
  const line = await controlRequestRaw(path, JSON.stringify(req), opts.timeoutMs ?? 60_000);
  const res = JSON.parse(line) as ControlResponse;
  return res;
}
