// The control socket's server side, run by the master: listens on the socket and hands each
// checked request to the handlers that whoever runs the queue manager registers. Trusts nothing
// it reads: a malformed or oversized request gets an error response.

import { createServer, type Server, type Socket } from 'node:net';
import { mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AdminSelection } from '../queue/index.js';
import { ControlUnavailableError, validateRequest, type ControlHandlers, type ControlRequest, type ControlResponse } from './protocol.js';
import { controlRequestRaw } from './client.js';

const MAX_LINE = 1 << 20;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
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
