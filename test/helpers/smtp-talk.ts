// A scripted SMTP client for end-to-end tests: it writes exact command lines and returns the
// server's replies (multi-line replies joined with \n), so tests assert on codes and texts.
import { connect, type Socket } from 'node:net';

export interface Talk {
  greeting: string;
  /** Send one command line (CRLF added) and wait for its reply. */
  cmd(line: string): Promise<string>;
  /** Send DATA content (dot-stuffing is the caller's job) followed by CRLF.CRLF; returns the reply. */
  data(content: string): Promise<string>;
  close(): void;
}

export function talk(port: number, host = '127.0.0.1', timeoutMs = 15_000): Promise<Talk> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect({ port, host });
    let buf = '';
    let waiter: ((reply: string) => void) | null = null;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('SMTP talk: timeout')); }, timeoutMs);
    const tryReply = () => {
      // A complete reply ends with a line "NNN text" (space after the code).
      const m = /^((?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?)\r?\n/.exec(buf.replace(/\r\n/g, '\n'));
      if (!m || !waiter) return;
      const norm = buf.replace(/\r\n/g, '\n');
      buf = norm.slice(m[0].length);
      const w = waiter;
      waiter = null;
      w(m[1]);
    };
    const next = () => new Promise<string>((r) => { waiter = r; tryReply(); });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => { buf += d; tryReply(); });
    sock.on('error', (err) => { clearTimeout(timer); reject(err); });
    next().then((greeting) => {
      clearTimeout(timer);
      const t: Talk = {
        greeting,
        cmd(line) {
          const p = next();
          sock.write(line + '\r\n');
          return withTimeout(p, timeoutMs, line);
        },
        data(content) {
          const p = next();
          sock.write(content.replace(/\r?\n/g, '\r\n') + '\r\n.\r\n');
          return withTimeout(p, timeoutMs, 'end of data');
        },
        close() { sock.destroy(); },
      };
      resolve(t);
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`SMTP talk: no reply to ${what} within ${ms} ms`)), ms); }),
  ]);
}
