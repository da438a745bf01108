// Test helper: a raw SMTP client on a real socket. It writes exact bytes (bare LF, NUL, pipelined
// groups, bytes before the greeting) and reads whole replies (multi-line ones joined). Every wait
// is bounded. Only ever connects to loopback.

import net from 'node:net';
import tls from 'node:tls';

export interface ReplyLines {
  code: number;
  lines: string[];
  /** The whole reply, lines joined with \n, without CRLFs. */
  text: string;
}

export class RawClient {
  private buf = '';
  private waiters: Array<() => void> = [];
  closed = false;
  private closedWaiters: Array<() => void> = [];

  private constructor(public socket: net.Socket | tls.TLSSocket) {
    this.attach(socket);
  }

  private attach(socket: net.Socket | tls.TLSSocket): void {
    socket.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.wake();
      for (const w of this.closedWaiters.splice(0)) w();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** Connect and read the greeting. */
  static async open(port: number): Promise<{ c: RawClient; greeting: ReplyLines }> {
    const c = await RawClient.connect(port);
    return { c, greeting: await c.read() };
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Read one whole reply. */
  async read(timeoutMs = 3000): Promise<ReplyLines> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines: string[] = [];
      let pos = 0;
      let done = false;
      for (;;) {
        const nl = this.buf.indexOf('\r\n', pos);
        if (nl < 0) break;
        const line = this.buf.slice(pos, nl);
        lines.push(line);
        pos = nl + 2;
        if (/^\d{3}(?: |$)/.test(line)) {
          done = true;
          break;
        }
      }
      if (done) {
        this.buf = this.buf.slice(pos);
        return { code: Number(lines[lines.length - 1].slice(0, 3)), lines, text: lines.join('\n') };
      }
      if (this.closed) throw new Error(`connection closed while waiting for a reply; have: ${JSON.stringify(this.buf)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for a reply; have: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Send one command line (CRLF added) and read its reply. */
  async cmd(line: string, timeoutMs?: number): Promise<ReplyLines> {
    this.write(line + '\r\n');
    return this.read(timeoutMs);
  }

  /** Resolves when the server closed the connection (bounded). */
  waitClosed(timeoutMs = 3000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timeout waiting for the server to close')), timeoutMs);
      this.closedWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Everything received but not yet read as a reply. */
  pending(): string {
    return this.buf;
  }

  /** Upgrade to TLS after a 220 to STARTTLS. */
  async startTls(ca?: string | Buffer): Promise<void> {
    const raw = this.socket as net.Socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const s = tls.connect({ socket: raw, ca, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
    });
    this.socket = s;
    this.buf = '';
    this.attach(s);
  }

  close(): void {
    this.socket.destroy();
  }
}
