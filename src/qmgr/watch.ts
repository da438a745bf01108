// The destination watch's probe: connect to one next-hop address, read the 220 greeting, say
// QUIT. Nothing else is sent, so a probe costs the primary one short session. A 220 means the
// destination is back; anything else (refused, timeout, 421/554 greeting, closed) means not yet.
// Trusts nothing from the peer: reads at most 4 KB, and every wait ends at `timeoutMs`.

import { connect, type Socket } from 'node:net';

export interface GreetingTarget {
  ip: string;
  port: number;
}

/** True when `ip:port` answers with a complete 220 greeting within `timeoutMs`. */
export function probeGreeting(t: GreetingTarget, timeoutMs: number, bindAddress?: string): Promise<boolean> {
  return new Promise((resolve) => {
    let buf = '';
    let done = false;
    let sock: Socket;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (ok) {
        sock.end('QUIT\r\n');
        // Do not wait for the 221: the answer is already known.
        setTimeout(() => sock.destroy(), 1000).unref();
      } else sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock = connect({ host: t.ip, port: t.port, ...(bindAddress ? { localAddress: bindAddress } : {}) });
    sock.setNoDelay(true);
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.length > 4096) return finish(false);
      // A multi-line greeting ends with the line "220 ..."; "220-" lines continue it.
      const lines = buf.split('\r\n');
      for (let i = 0; i < lines.length - 1; i++) {
        const l = lines[i];
        if (/^\d{3}-/.test(l)) continue;
        return finish(/^220( |$)/.test(l));
      }
    });
  });
}
