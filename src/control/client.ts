// The control socket's client side, used by postqueue -f/-s and postsuper: one request, one
// response, every wait bounded. Nobody listening is ControlUnavailableError, so the caller can
// work on the queue files itself (under the queue lock).

import { createConnection } from 'node:net';
import { ControlUnavailableError, type ControlRequest, type ControlResponse } from './protocol.js';

export function controlRequestRaw(path: string, line: string, timeoutMs: number): Promise<string> {
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
