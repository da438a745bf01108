// The master's HTTP listener (backstop_http_listen): /metrics for Prometheus, the dashboard at /,
// its data at /api/status (the same JSON as `backstop status --json`) and its actions at
// POST /api/action (flush a destination; hold, release, requeue or delete a message), which go to
// the queue manager through the control socket, as postqueue and postsuper do. The master runs
// no SMTP session and parses no message here: it asks the workers for their numbers (observe) and
// forwards actions. Plain node:http: five fixed routes, JSON in and out, and nothing a framework
// would add that we need (no templates, sessions or plugins) — one dependency fewer to audit.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Observation } from '../observe/index.js';
import { controlRequest, controlSocketPath, ControlUnavailableError, type ControlRequest } from '../control/index.js';
import { isValidQueueId } from '../queue/index.js';
import { refuseAction, type ActionAuth } from './auth.js';
import { formatListen, isLoopback, type ListenAddress } from './listen.js';
import { DASHBOARD_HTML } from './page.js';
import { systemMetrics, systemStatus, type MasterFacts } from './status.js';

export interface HttpOptions {
  listen: ListenAddress;
  master: MasterFacts;
  queueDirectory: string;
  auth: ActionAuth;
  observe(): Promise<Observation>;
}

export interface HttpServer {
  address(): ListenAddress;
  /** New credentials or queue after a reload (the listen address is the caller's business). */
  update(opts: Partial<Pick<HttpOptions, 'auth' | 'queueDirectory'>>): void;
  close(): Promise<void>;
}

const BODY_LIMIT = 4096;
const ACTIONS = new Set(['flush', 'hold', 'release', 'requeue', 'delete']);
const DOMAIN = /^[a-z0-9]([a-z0-9.-]{0,252})$/i;

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

function send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS, ...extra });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value) + '\n');
}

/** The body, or undefined when it is larger than BODY_LIMIT (the rest is read and dropped). */
function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= BODY_LIMIT) parts.push(c);
    });
    req.on('end', () => resolve(size > BODY_LIMIT ? undefined : Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

/** The name in a Host header: `h:1`, `[::1]:1` → `h`, `::1`. */
function hostName(host: string | undefined): string {
  if (!host) return '';
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(host) ?? /^([^:]+)(?::\d+)?$/.exec(host);
  return m ? m[1] : '';
}

/** The control request for an action, or why it is malformed. */
export function actionRequest(body: unknown): ControlRequest | string {
  if (typeof body !== 'object' || body === null) return 'the body must be a JSON object';
  const b = body as Record<string, unknown>;
  if (typeof b.action !== 'string' || !ACTIONS.has(b.action)) return `action must be one of ${[...ACTIONS].join(', ')}`;
  if (b.action === 'flush') {
    if (typeof b.destination !== 'string' || !DOMAIN.test(b.destination)) return 'flush needs a destination (a domain name)';
    return { op: 'flush-site', site: b.destination.toLowerCase() };
  }
  // One message at a time: never ALL from a web page.
  if (typeof b.id !== 'string' || b.id === 'ALL' || !isValidQueueId(b.id)) return `${b.action} needs a queue id`;
  return { op: b.action as 'hold' | 'release' | 'requeue' | 'delete', ids: [b.id] };
}

export function startHttp(initial: HttpOptions): Promise<HttpServer> {
  const opts = { ...initial };
  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    // DNS rebinding: another site's name pointed at 127.0.0.1 must not read the queue through the
    // visitor's browser. On loopback, only loopback names are ours.
    if (isLoopback(opts.listen.host) && !isLoopback(hostName(req.headers.host))) return json(res, 421, { error: `Host ${req.headers.host ?? '(none)'} is not this listener` });
    if (path === '/' && (method === 'GET' || method === 'HEAD')) {
      return send(res, 200, 'text/html; charset=utf-8', DASHBOARD_HTML, { 'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'" });
    }
    if (path === '/metrics' && method === 'GET') {
      const m = await systemMetrics(await opts.observe());
      return send(res, 200, m.contentType, m.text);
    }
    if (path === '/api/status' && method === 'GET') {
      const st = systemStatus(opts.master, await opts.observe());
      return json(res, 200, { ...st, actions: opts.auth.digest !== undefined });
    }
    if (path === '/api/action') {
      if (method !== 'POST') return json(res, 405, { error: 'use POST' });
      const refused = refuseAction(opts.auth, { authorization: req.headers.authorization, origin: req.headers.origin, host: req.headers.host });
      if (refused) return json(res, refused.status, { error: refused.error });
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return json(res, 415, { error: 'the body must be application/json' });
      const text = await readBody(req);
      if (text === undefined) return json(res, 413, { error: `the body is larger than ${BODY_LIMIT} bytes` });
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (err) {
        return json(res, 400, { error: `bad request body: ${(err as Error).message}` });
      }
      const creq = actionRequest(body);
      if (typeof creq === 'string') return json(res, 400, { error: creq });
      try {
        const r = await controlRequest(controlSocketPath(opts.queueDirectory), creq, { timeoutMs: 30_000 });
        if (!r.ok) return json(res, 409, { error: r.error });
        if (r.flush && r.flush !== 'ok') return json(res, 409, { error: `flush refused (${r.flush})` });
        return json(res, 200, { ok: true, ...(r.result ? { result: r.result } : {}) });
      } catch (err) {
        const why = err instanceof ControlUnavailableError ? 'the queue manager is not answering' : (err as Error).message;
        return json(res, 503, { error: why });
      }
    }
    return json(res, 404, { error: `no such page: ${path}` });
  };
  const server: Server = createServer((req, res) => {
    route(req, res).catch((err: Error) => {
      if (!res.headersSent) json(res, 500, { error: err.message });
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`backstop_http_listen ${formatListen(opts.listen)}: ${err.code ?? err.message}`)));
    server.listen(opts.listen.port, opts.listen.host, () => {
      const a = server.address();
      const bound = typeof a === 'object' && a ? { host: opts.listen.host, port: a.port } : opts.listen;
      resolve({
        address: () => bound,
        update: (next) => Object.assign(opts, next),
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
