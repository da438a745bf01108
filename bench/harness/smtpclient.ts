// A small SMTP client for latency measurements: one command at a time, each reply timed with
// performance.now(). Multi-line replies are joined with "\n". Every wait has a deadline.
// Trusts nothing from the server beyond the reply syntax (three digits, '-' or ' ').
import { connect, type Socket } from 'node:net';

export interface SmtpReply {
  code: number;
  text: string;
  /** Milliseconds from writing the command to the complete reply. */
  ms: number;
}

export interface SmtpSession {
  greeting: string;
  /** Milliseconds from connect() to the complete greeting. */
  greetingMs: number;
  /** Sends a line (CRLF added) and waits for the reply. For DATA content pass the text ending in "\r\n.". */
  command(line: string, timeoutMs?: number): Promise<SmtpReply>;
  quit(): Promise<void>;
  /** Drops the connection without QUIT. */
  destroy(): void;
  socket: Socket;
}

export function smtpSession(o: { host: string; port: number; timeoutMs?: number }): Promise<SmtpSession> {
  const limit = o.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sock = connect({ host: o.host, port: o.port });
    sock.setNoDelay(true);
    let buf = '';
    let lines: string[] = [];
    let waiter: { resolve: (r: { code: number; text: string }) => void; reject: (e: Error) => void } | null = null;
    let failure: Error | null = null;
    const pump = () => {
      let i;
      while (waiter && (i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).replace(/\r$/, '');
        buf = buf.slice(i + 1);
        lines.push(line);
        if (/^\d{3}(?: |$)/.test(line)) {
          const w = waiter;
          waiter = null;
          const text = lines.join('\n');
          lines = [];
          w.resolve({ code: Number(line.slice(0, 3)), text });
        } else if (!/^\d{3}-/.test(line)) {
          const w = waiter;
          waiter = null;
          w.reject(new Error(`SMTP: malformed reply line: ${JSON.stringify(line)}`));
        }
      }
    };
    const next = (ms: number) => new Promise<{ code: number; text: string }>((res, rej) => {
      if (failure) return rej(failure);
      const t = setTimeout(() => { waiter = null; rej(new Error(`SMTP: no reply within ${ms} ms`)); }, ms);
      waiter = {
        resolve: (r) => { clearTimeout(t); res(r); },
        reject: (e) => { clearTimeout(t); rej(e); },
      };
      pump();
    });
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => { buf += d; pump(); });
    const fail = (e: Error) => { failure = e; if (waiter) { const w = waiter; waiter = null; w.reject(e); } };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('SMTP: connection closed')));
    sock.once('error', reject);
    next(limit).then((g) => {
      sock.off('error', reject);
      const session: SmtpSession = {
        greeting: g.text,
        greetingMs: performance.now() - t0,
        socket: sock,
        async command(line, ms = limit) {
          const c0 = performance.now();
          const p = next(ms);
          sock.write(line + '\r\n');
          const r = await p;
          return { ...r, ms: performance.now() - c0 };
        },
        async quit() {
          try { await session.command('QUIT', 5000); } catch { /* closing anyway */ }
          sock.destroy();
        },
        destroy() { sock.destroy(); },
      };
      resolve(session);
    }, (e) => { sock.destroy(); reject(e); });
  });
}

/** p in [0,100] of a sample (nearest-rank on the sorted values). */
export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank];
}
