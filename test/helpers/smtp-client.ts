// The one SMTP client of the tests: a raw client on a real socket. It writes exact bytes (bare
// LF, NUL, 8-bit bytes, pipelined groups, bytes before the greeting) and reads whole replies
// (multi-line ones joined with \n); `data()` is the one convenience that rewrites what it sends
// (LF → CRLF). It can pick its source address (localAddress) and upgrade with STARTTLS. Every wait
// is bounded (timeoutMs per client, overridable per call). Only ever connects to loopback.
// `talk()` at the end is the short form for end-to-end tests that assert on reply texts.

import net from 'node:net';
import tls from 'node:tls';

export interface ReplyLines {
  code: number;
  lines: string[];
  /** The whole reply, lines joined with \n, without CRLFs. */
  text: string;
}

export interface ConnectOptions {
  /** Source address of the connection (another loopback address, e.g. 127.0.0.7). */
  localAddress?: string;
  /** Default limit for connecting and for each wait (default 3000 ms). */
  timeoutMs?: number;
}

const CRLF = Buffer.from('\r\n');

export class RawClient {
  private buf = '';
  private waiters: Array<() => void> = [];
  closed = false;
  private closedWaiters: Array<() => void> = [];

  private constructor(public socket: net.Socket | tls.TLSSocket, private readonly timeoutMs: number) {
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

  static connect(port: number, host = '127.0.0.1', opts: ConnectOptions = {}): Promise<RawClient> {
    const timeoutMs = opts.timeoutMs ?? 3000;
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, localAddress: opts.localAddress }, () => {
        clearTimeout(t);
        resolve(new RawClient(s, timeoutMs));
      });
      const t = setTimeout(() => { s.destroy(); reject(new Error(`no connection to ${host}:${port} within ${timeoutMs} ms`)); }, timeoutMs);
      s.once('error', (err) => { clearTimeout(t); reject(err); });
    });
  }

  /** Connect and read the greeting. */
  static async open(port: number, host = '127.0.0.1', opts: ConnectOptions = {}): Promise<{ c: RawClient; greeting: ReplyLines }> {
    const c = await RawClient.connect(port, host, opts);
    try {
      return { c, greeting: await c.read() };
    } catch (err) {
      c.close();
      throw err;
    }
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Read one whole reply. */
  async read(timeoutMs = this.timeoutMs): Promise<ReplyLines> {
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

  /** Read one whole reply; just its text. */
  async readText(timeoutMs?: number): Promise<string> {
    return (await this.read(timeoutMs)).text;
  }

  /** Send one command line (CRLF added, the bytes otherwise as given) and read its reply. */
  async cmd(line: string | Buffer, timeoutMs?: number): Promise<ReplyLines> {
    this.write(typeof line === 'string' ? line + '\r\n' : Buffer.concat([line, CRLF]));
    return this.read(timeoutMs);
  }

  /** cmd(), returning just the reply's text. */
  async say(line: string | Buffer, timeoutMs?: number): Promise<string> {
    return (await this.cmd(line, timeoutMs)).text;
  }

  /**
   * Send message content after a 354 — every LF (or CRLF) sent as CRLF, dot-stuffing left to the
   * caller — then CRLF.CRLF, and read the end-of-data reply.
   */
  async data(content: string, timeoutMs?: number): Promise<ReplyLines> {
    this.write(content.replace(/\r?\n/g, '\r\n') + '\r\n.\r\n');
    return this.read(timeoutMs);
  }

  /** Resolves when the server closed the connection (bounded). */
  waitClosed(timeoutMs = this.timeoutMs): Promise<void> {
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

  /** Upgrade to TLS after a 220 to STARTTLS (`extra`: e.g. a protocol version range). */
  async startTls(ca?: string | Buffer, extra: tls.ConnectionOptions = {}): Promise<void> {
    const raw = this.socket as net.Socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('close');
    const s = tls.connect({ socket: raw, ca, rejectUnauthorized: false, servername: 'localhost', ...extra });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => { s.destroy(); reject(new Error(`no TLS handshake within ${this.timeoutMs} ms`)); }, this.timeoutMs);
      s.once('secureConnect', () => { clearTimeout(t); resolve(); });
      s.once('error', (err) => { clearTimeout(t); reject(err); });
    });
    this.socket = s;
    this.buf = '';
    this.attach(s);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A scripted session that asserts on reply texts: the greeting read, commands and content in. */
export interface Talk {
  greeting: string;
  /** Send one command line (CRLF added) and wait for its reply's text. */
  cmd(line: string): Promise<string>;
  /** RawClient.data(): content with LF → CRLF, then CRLF.CRLF; the reply's text. */
  data(content: string): Promise<string>;
  close(): void;
}

/** RawClient.open() with a 15 s limit per wait, seen through Talk. */
export async function talk(port: number, host = '127.0.0.1', timeoutMs = 15_000): Promise<Talk> {
  const { c, greeting } = await RawClient.open(port, host, { timeoutMs });
  return {
    greeting: greeting.text,
    cmd: (line) => c.say(line),
    data: async (content) => (await c.data(content)).text,
    close: () => c.close(),
  };
}

/**
 * One message through a whole session (EHLO, MAIL, RCPT, DATA); returns the queue ID of the
 * `250 2.0.0 Ok: queued as ID` reply, and throws with the reply when RCPT or DATA is refused.
 */
export async function submit(port: number, rcpt: string, opts: { sender?: string; subject?: string } = {}): Promise<string> {
  const s = await talk(port);
  try {
    await s.cmd('EHLO client.test');
    await s.cmd(`MAIL FROM:<${opts.sender ?? 'a@sender.test'}>`);
    const r = await s.cmd(`RCPT TO:<${rcpt}>`);
    if (!r.startsWith('250')) throw new Error(`RCPT TO:<${rcpt}> refused: ${r}`);
    await s.cmd('DATA');
    const d = await s.data(`Subject: ${opts.subject ?? rcpt}\r\n\r\nbody\r\n`);
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(d);
    if (!m) throw new Error(`message to <${rcpt}> not queued: ${d}`);
    return m[1];
  } finally {
    s.close();
  }
}
