// Timing and port helpers shared by the tests and the benchmark harness (bench/harness/proc.ts
// re-exports them): sleep, a free loopback port, "does this port answer", and a bounded poll.
// Only ever binds or connects to the host it is given (loopback in every caller); every wait is
// bounded.
import { connect, createServer } from 'node:net';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when `port` can be bound on `host` right now (bind and close). */
function canListen(port: number, host: string): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(null));
    srv.listen(port, host, () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
}

/**
 * A TCP port free on `host` (listen on 0, close, reuse the number) and, when `alsoOn` names more
 * addresses, free on each of them too (a sink that moves between addresses keeps its port).
 * Gives up after 50 tries.
 */
export async function freePort(host = '127.0.0.1', ...alsoOn: string[]): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await canListen(0, host);
    if (port === null) throw new Error(`freePort: cannot listen on ${host}`);
    let ok = true;
    for (const h of alsoOn) if ((await canListen(port, h)) === null) { ok = false; break; }
    if (ok) return port;
  }
  throw new Error(`freePort: no port free on ${[host, ...alsoOn].join(' and ')} after 50 tries`);
}

/** True when something accepts TCP connections on host:port (false after timeoutMs). */
export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const t = setTimeout(() => { s.destroy(); resolve(false); }, timeoutMs);
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(t); resolve(false); });
  });
}

/** Polls `cond` every `everyMs` until it returns a truthy value; throws `what` after timeoutMs. */
export async function waitFor<T>(cond: () => T | Promise<T>, timeoutMs: number, what: string, everyMs = 50): Promise<NonNullable<Awaited<T>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<Awaited<T>>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
