// Client side of the Dovecot authentication protocol (version 1.x), as Postfix's xsasl_dovecot
// speaks it: VERSION/CPID handshake, the server's MECH list up to DONE, then AUTH requests
// (`AUTH id mech service=smtp ... resp=base64`) answered by OK, FAIL or CONT (a challenge that the
// SMTP client answers through a 334 reply). One connection is shared by the sessions of a
// listener; requests are told apart by id. Every request has a deadline; a lost or silent auth
// server is a temporary failure (454), never a success. Trusts the auth server's verdict, nothing
// else it says.

import net from 'node:net';

export interface DovecotMech {
  name: string;
  /** Flags from the MECH line: plaintext, anonymous, dictionary, active, forward-secrecy, mutual-auth. */
  flags: string[];
}

export type AuthStep =
  | { kind: 'ok'; user: string }
  | { kind: 'fail'; reason?: string; temporary: boolean }
  | { kind: 'cont'; id: number; challenge: string };

export interface AuthRequestInfo {
  localIp?: string;
  remoteIp?: string;
  localPort?: number;
  remotePort?: number;
  /** The session runs under TLS. */
  secured: boolean;
}

export interface DovecotClientOptions {
  /** `inet:host:port`, `unix:path` or a socket path. */
  path: string;
  /** Deadline for the handshake and for each answer, milliseconds. */
  timeoutMs?: number;
}

export class DovecotProtocolError extends Error {}

/** Dovecot's tab-escaping: \1 → 0x01, \t → TAB, \r → CR, \n → LF, \\ → backslash. */
export function unescapeValue(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => ({ '1': '\x01', t: '\t', r: '\r', n: '\n' })[c] ?? c);
}

export function escapeValue(v: string): string {
  return v.replace(/[\\\x01\t\r\n]/g, (c) => ({ '\\': '\\\\', '\x01': '\\1', '\t': '\\t', '\r': '\\r', '\n': '\\n' })[c] as string);
}

function connectTarget(path: string): net.NetConnectOpts {
  if (path.startsWith('inet:')) {
    const hp = path.slice(5);
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(hp) ?? /^([^:]+):(\d+)$/.exec(hp);
    if (!m) throw new DovecotProtocolError(`bad smtpd_sasl_path: ${path}: expected inet:host:port`);
    return { host: m[1], port: Number(m[2]) };
  }
  return { path: path.startsWith('unix:') ? path.slice(5) : path };
}

interface Pending {
  resolve: (s: AuthStep) => void;
  timer: NodeJS.Timeout;
}

export class DovecotAuthClient {
  private socket: net.Socket | null = null;
  private ready: Promise<DovecotMech[]> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly timeoutMs: number;

  constructor(private readonly opts: DovecotClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** The mechanisms the auth server offers (connects and does the handshake when needed). */
  mechanisms(): Promise<DovecotMech[]> {
    if (!this.ready) this.ready = this.connect();
    return this.ready;
  }

  private connect(): Promise<DovecotMech[]> {
    return new Promise((resolve, reject) => {
      let target: net.NetConnectOpts;
      try {
        target = connectTarget(this.opts.path);
      } catch (err) {
        reject(err);
        return;
      }
      const sock = net.connect(target);
      this.socket = sock;
      const mechs: DovecotMech[] = [];
      let handshakeDone = false;
      let versionOk = false;
      let buf = '';
      const timer = setTimeout(() => fail(new DovecotProtocolError('timeout waiting for the auth server handshake')), this.timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        if (this.socket === sock) this.drop();
        else if (!sock.destroyed) sock.destroy();
        if (!handshakeDone) reject(err);
      };
      sock.setNoDelay(true);
      sock.on('connect', () => sock.write(`VERSION\t1\t1\nCPID\t${process.pid}\n`));
      sock.on('error', (err) => fail(new DovecotProtocolError(`cannot talk to the auth server at ${this.opts.path}: ${err.message}`)));
      sock.on('close', () => fail(new DovecotProtocolError(`auth server at ${this.opts.path} closed the connection`)));
      sock.on('data', (chunk) => {
        buf += chunk.toString('utf8');
        if (buf.length > 65536 && !buf.includes('\n')) return fail(new DovecotProtocolError('auth server line too long'));
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const f = line.split('\t');
          if (!handshakeDone) {
            if (f[0] === 'VERSION') {
              if (f[1] !== '1') return fail(new DovecotProtocolError(`auth server protocol version ${f[1]} is not supported`));
              versionOk = true;
            } else if (f[0] === 'MECH' && f[1]) {
              mechs.push({ name: f[1].toUpperCase(), flags: f.slice(2) });
            } else if (f[0] === 'DONE') {
              if (!versionOk) return fail(new DovecotProtocolError('auth server sent no VERSION'));
              handshakeDone = true;
              clearTimeout(timer);
              resolve(mechs);
            }
            // SPID, CUID, COOKIE and unknown lines are ignored, as Postfix does.
          } else {
            this.onLine(f);
          }
        }
      });
    });
  }

  private onLine(f: string[]): void {
    const id = Number(f[1]);
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    const params = new Map<string, string>();
    for (const a of f.slice(f[0] === 'CONT' ? 3 : 2)) {
      const eq = a.indexOf('=');
      params.set(eq < 0 ? a : a.slice(0, eq), eq < 0 ? '' : unescapeValue(a.slice(eq + 1)));
    }
    if (f[0] === 'OK') p.resolve({ kind: 'ok', user: params.get('user') ?? '' });
    else if (f[0] === 'CONT') p.resolve({ kind: 'cont', id, challenge: f[2] ?? '' });
    else if (f[0] === 'FAIL') p.resolve({ kind: 'fail', reason: params.get('reason'), temporary: params.has('temp') });
    else p.resolve({ kind: 'fail', reason: `unexpected auth server reply ${f[0]}`, temporary: true });
  }

  private drop(): void {
    const s = this.socket;
    this.socket = null;
    this.ready = null;
    if (s && !s.destroyed) s.destroy();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.resolve({ kind: 'fail', reason: 'lost connection to the authentication server', temporary: true });
    }
  }

  private request(id: number, line: string): Promise<AuthStep> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ kind: 'fail', reason: 'timeout waiting for the authentication server', temporary: true });
      }, this.timeoutMs);
      this.pending.set(id, { resolve, timer });
      this.socket?.write(line);
    });
  }

  /** Start an exchange. `initial` is the client's base64 initial response ('' for `=`), if any. */
  async start(mech: string, initial: string | undefined, info: AuthRequestInfo): Promise<AuthStep> {
    try {
      await this.mechanisms();
    } catch (err) {
      return { kind: 'fail', reason: (err as Error).message, temporary: true };
    }
    const id = this.nextId++;
    const parts = ['AUTH', String(id), mech, 'service=smtp', 'nologin'];
    if (info.localIp) parts.push(`lip=${escapeValue(info.localIp)}`);
    if (info.remoteIp) parts.push(`rip=${escapeValue(info.remoteIp)}`);
    if (info.localPort) parts.push(`lport=${info.localPort}`);
    if (info.remotePort) parts.push(`rport=${info.remotePort}`);
    if (info.secured) parts.push('secured');
    if (initial !== undefined) parts.push(`resp=${initial}`);
    return this.request(id, parts.join('\t') + '\n');
  }

  /** Answer a CONT challenge with the client's base64 response. */
  continue(id: number, response: string): Promise<AuthStep> {
    if (!this.socket) return Promise.resolve({ kind: 'fail', reason: 'lost connection to the authentication server', temporary: true });
    return this.request(id, `CONT\t${id}\t${response}\n`);
  }

  close(): void {
    this.drop();
  }
}
