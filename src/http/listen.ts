// backstop_http_listen: `host:port`, `[v6]:port`, or empty (no HTTP listener).

import { isIP } from 'node:net';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Parse the parameter; throws with what is expected. Empty: undefined (off). */
export function parseListen(value: string): ListenAddress | undefined {
  const v = value.trim();
  if (!v) return undefined;
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([^:[\]]+):(\d+)$/.exec(v);
  if (!m) throw new Error(`"${v}" is not host:port or [address]:port`);
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`"${v}": port ${m[2]} is not 1..65535`);
  if (!isIP(m[1]) && !/^[a-z0-9.-]+$/i.test(m[1])) throw new Error(`"${v}": "${m[1]}" is not an address or host name`);
  return { host: m[1], port };
}

/** 127.0.0.0/8, ::1, localhost: only this host can connect. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

export function formatListen(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
