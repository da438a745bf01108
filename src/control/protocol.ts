// The control socket's protocol: how postqueue and postsuper reach the running server, so that
// their changes go through the server's in-memory state and never race with it (no lost
// updates). A unix socket under queue_directory (public/control), one JSON request per line, one
// JSON response per line. This file holds the shapes and the request check both ends share.

import { join } from 'node:path';
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

/** No server answers on the socket (not running, or a stale socket file). */
export class ControlUnavailableError extends Error {
  constructor(readonly path: string, cause: string) {
    super(`control socket ${path}: ${cause}`);
    this.name = 'ControlUnavailableError';
  }
}

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
