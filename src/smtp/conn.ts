// The wire under one outbound SMTP session: the TCP connect (bounded by smtp_connect_timeout),
// writing commands, and reading each reply within its own Postfix timeout. Every failure becomes
// a SessionError with Postfix's text ("connect to ...", "lost connection with ... while ...",
// "conversation with ... timed out while ..."), and a failed read closes the connection, so no
// later command can be answered by a stale reply. Trusts nothing from the peer (see replies.ts).

import { connect as netConnect, type Socket } from 'node:net';
import type { MxAddress } from './nexthop.js';
import { DEFAULT_TIMEOUTS, type SessionOptions, type SmtpTimeouts } from './options.js';
import { parseReply, ReplyReader, type ServerReply } from './replies.js';

export type FailureKind = 'connect' | 'greeting' | 'lost' | 'timeout' | 'reply' | 'tls' | 'policy';

/** A failure of the session (not of one recipient). `dsn` decides temporary vs permanent. */
export class SessionError extends Error {
  constructor(
    readonly kind: FailureKind,
    readonly dsn: string,
    readonly text: string,
    readonly reply?: ServerReply,
  ) {
    super(text);
    this.name = 'SessionError';
  }
  get soft(): boolean {
    return !this.dsn.startsWith('5');
  }
}

/** "NAME[IP]" as Postfix names a peer. */
export function hostDesc(a: MxAddress): string {
  return `${a.name}[${a.ip}]`;
}

/** The timeouts in force: Postfix's defaults with the session's own on top. */
export function timeoutsOf(opts: SessionOptions): SmtpTimeouts {
  return { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
}

/** Opens the TCP connection, bounded by smtp_connect_timeout. */
export async function connectSocket(address: MxAddress, opts: SessionOptions): Promise<Socket> {
  const t = timeoutsOf(opts);
  const desc = `${hostDesc(address)}:${address.port}`;
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = netConnect({ host: address.ip, port: address.port, localAddress: opts.bindAddress });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new SessionError('connect', '4.4.1', `connect to ${desc}: Connection timed out`));
    }, t.smtp_connect_timeout * 1000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new SessionError('connect', '4.4.1', `connect to ${desc}: ${errnoText(err)}`));
    });
  });
  socket.setNoDelay(true);
  return socket;
}

/** The connection of one session; STARTTLS replaces its socket (see handshake.ts). */
export class Conn {
  /** "NAME[IP]". */
  readonly host: string;
  /** "NAME[IP]:PORT", the relay= field. */
  readonly relay: string;
  readonly reader: ReplyReader;
  readonly t: SmtpTimeouts;
  socket: Socket;
  dead = false;
  /** Resolves when the TCP connection has closed (however it ended; STARTTLS does not end it). */
  readonly closed: Promise<void>;

  constructor(readonly address: MxAddress, socket: Socket, readonly opts: SessionOptions) {
    this.host = hostDesc(address);
    this.relay = `${this.host}:${address.port}`;
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.t = timeoutsOf(opts);
    this.reader = new ReplyReader(opts.lineLengthLimit ?? 2048);
    this.attach(socket);
  }

  attach(sock: Socket): void {
    sock.on('data', (d: Buffer) => this.reader.feed(d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.dead = true;
      this.reader.end(new Error('connection closed'));
    });
  }

  get alive(): boolean {
    return !this.dead && !this.socket.destroyed;
  }

  /** The next reply, within `timeoutSec`; `stage` names the wait in Postfix's failure text. */
  async read(timeoutSec: number, stage: string): Promise<ServerReply> {
    try {
      const lines = await this.reader.next(timeoutSec * 1000, () => new SessionError('timeout', '4.4.2', `conversation with ${this.host} timed out while ${stage}`));
      return parseReply(lines);
    } catch (err) {
      this.destroy();
      if (err instanceof SessionError) throw err;
      throw new SessionError('lost', '4.4.2', `lost connection with ${this.host} while ${stage}`);
    }
  }

  write(data: string | Buffer, stage: string): void {
    if (!this.alive) throw new SessionError('lost', '4.4.2', `lost connection with ${this.host} while ${stage}`);
    this.socket.write(data);
  }

  /** Postfix's text for a reply that failed a command. */
  said(r: ServerReply, command: string): string {
    return `host ${this.host} said: ${r.text} (in reply to ${command} command)`;
  }

  destroy(): void {
    this.dead = true;
    this.socket.destroy();
  }
}

/** The strerror() text Postfix prints for connect failures. */
function errnoText(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED': return 'Connection refused';
    case 'ETIMEDOUT': return 'Connection timed out';
    case 'EHOSTUNREACH': return 'No route to host';
    case 'ENETUNREACH': return 'Network is unreachable';
    case 'ECONNRESET': return 'Connection reset by peer';
    case 'EADDRNOTAVAIL': return 'Cannot assign requested address';
    default: return err.message;
  }
}
