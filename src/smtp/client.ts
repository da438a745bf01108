// One outbound SMTP session, as smtp(8) runs it: connect, greeting, EHLO (HELO when EHLO gets a
// 5xx), STARTTLS per smtp_tls_security_level, then any number of mail transactions (RSET between
// them) and QUIT. Every wait has its own Postfix timeout; every failure is reported with
// Postfix's text ("connect to ...", "host ... said: ... (in reply to ... command)",
// "lost connection with ... while ...", "conversation with ... timed out while ...").
//
// Why not nodemailer's SMTPConnection: it gives one result per message (not per recipient),
// cannot stop after RCPT (address probes without DATA), does not expose session reuse with RSET,
// and does not pipeline MAIL+RCPT+DATA. Those four are what a backup MX needs.
//
// Trusts nothing from the peer: reply lines are length- and count-limited, and the content goes
// through DataEncoder, so the peer sees exactly one message with CRLF line endings.

import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, checkServerIdentity, type TLSSocket, type PeerCertificate } from 'node:tls';
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import type { Logger } from '../log/index.js';
import type { DsnNotify } from '../mail/index.js';
import { DataEncoder } from './body.js';
import { formatTlsLine } from './log.js';
import type { MxAddress } from './nexthop.js';

/** Timeouts in seconds, named as Postfix names them. */
export interface SmtpTimeouts {
  smtp_connect_timeout: number;
  smtp_helo_timeout: number;
  smtp_starttls_timeout: number;
  smtp_mail_timeout: number;
  smtp_rcpt_timeout: number;
  smtp_data_init_timeout: number;
  smtp_data_xfer_timeout: number;
  smtp_data_done_timeout: number;
  smtp_rset_timeout: number;
  smtp_quit_timeout: number;
}

export const DEFAULT_TIMEOUTS: SmtpTimeouts = {
  smtp_connect_timeout: 30,
  smtp_helo_timeout: 300,
  smtp_starttls_timeout: 300,
  smtp_mail_timeout: 300,
  smtp_rcpt_timeout: 300,
  smtp_data_init_timeout: 120,
  smtp_data_xfer_timeout: 180,
  smtp_data_done_timeout: 600,
  smtp_rset_timeout: 20,
  smtp_quit_timeout: 300,
};

export type TlsLevel = 'none' | 'may' | 'encrypt' | 'verify' | 'secure';

export interface SessionOptions {
  /** smtp_helo_name (default $myhostname). */
  heloName: string;
  /** smtp_tls_security_level (default none, as Postfix). */
  tlsLevel?: TlsLevel;
  /** smtp_tls_CAfile contents or path-loaded PEM, for verify/secure. */
  tlsCa?: string | Buffer;
  timeouts?: Partial<SmtpTimeouts>;
  /** smtp_bind_address. */
  bindAddress?: string;
  logger?: Logger;
  /** Longest reply line kept (longer lines are truncated), Postfix's line_length_limit. */
  lineLengthLimit?: number;
  /** smtp_line_length_limit: longer message lines are broken with CRLF SPACE (default 998; 0 = never). */
  smtpLineLengthLimit?: number;
}

export interface ServerReply {
  code: number;
  /** Enhanced status code from the reply, or derived from the code (X.0.0). */
  dsn: string;
  /** All lines joined with a space, each with its code, as Postfix logs them. */
  text: string;
  lines: string[];
}

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

export interface Features {
  esmtp: boolean;
  pipelining: boolean;
  /** SIZE limit announced (0: none or unlimited). */
  size: number | undefined;
  dsn: boolean;
  smtputf8: boolean;
  eightBitMime: boolean;
  starttls: boolean;
}

export interface TxRecipient {
  address: string;
  notify?: DsnNotify[];
  orcpt?: string;
}

export interface Transaction {
  sender: string;
  recipients: TxRecipient[];
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  smtputf8?: boolean;
  /** BODY= value to pass when the peer announces 8BITMIME. */
  bodyType?: '7BIT' | '8BITMIME';
  /** Message size in bytes, for SIZE=. */
  size?: number;
  /** The content (CRLF or not; it is normalized). Absent: probe mode, no DATA. */
  body?: () => Readable;
}

/** The outcome for one recipient of a transaction. */
export interface RecipientOutcome {
  address: string;
  /** 2 = accepted, 4 = temporary failure, 5 = permanent failure. */
  klass: 2 | 4 | 5;
  dsn: string;
  /** Postfix's text: the reply for successes, "host X said: ... (in reply to ...)" for failures. */
  text: string;
}

const dsnRe = /^[245]\.\d{1,3}\.\d{1,3}$/;

/** Parses reply lines into a ServerReply. */
export function parseReply(lines: string[]): ServerReply {
  const last = lines[lines.length - 1] ?? '';
  const code = /^\d{3}/.test(last) ? Number(last.slice(0, 3)) : 0;
  const first = lines[0] ?? '';
  const m = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/.exec(first);
  const klass = String(code)[0];
  let dsn = m && dsnRe.test(m[1]) ? m[1] : '';
  if (!dsn || dsn[0] !== klass) dsn = /^[245]$/.test(klass) ? `${klass}.0.0` : '4.0.0';
  return { code, dsn, text: lines.join(' '), lines };
}

/** "NAME[IP]" as Postfix names a peer. */
export function hostDesc(a: MxAddress): string {
  return `${a.name}[${a.ip}]`;
}

/** Reads replies off a socket; replaces the socket after STARTTLS. */
class ReplyReader {
  private decoder = new StringDecoder('utf8');
  private partial = '';
  private lines: string[] = [];
  private replies: string[][] = [];
  private waiter: { resolve: (r: string[]) => void; reject: (e: Error) => void } | null = null;
  private ended = false;
  private static readonly MAX_LINES = 100;

  constructor(private readonly lineLimit: number) {}

  feed(chunk: Buffer): void {
    let text = this.partial + this.decoder.write(chunk);
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0) {
      let line = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.line(line);
    }
    // An endless line without newline must not grow memory: keep only what the limit allows.
    this.partial = text.length > this.lineLimit ? text.slice(0, this.lineLimit) : text;
  }

  private line(raw: string): void {
    const line = raw.length > this.lineLimit ? raw.slice(0, this.lineLimit) : raw;
    if (this.lines.length < ReplyReader.MAX_LINES) this.lines.push(line);
    if (/^\d{3}-/.test(line)) return;
    const reply = this.lines;
    this.lines = [];
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(reply);
    } else {
      this.replies.push(reply);
    }
  }

  end(err: Error): void {
    this.ended = true;
    this.endError = err;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(err);
    }
  }
  private endError: Error | null = null;

  /** Drops any decoder state (after STARTTLS nothing from before may be used). */
  reset(): void {
    this.decoder = new StringDecoder('utf8');
    this.partial = '';
    this.lines = [];
    this.replies = [];
  }

  get pending(): number {
    return this.replies.length;
  }

  next(): Promise<string[]> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.ended) return Promise.reject(this.endError!);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  cancel(err: Error): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(err);
    }
  }
}

function xtext(s: string): string {
  let out = '';
  for (const ch of Buffer.from(s, 'utf8')) {
    out += ch < 33 || ch > 126 || ch === 0x2b || ch === 0x3d ? '+' + ch.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(ch);
  }
  return out;
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

export class SmtpSession {
  readonly address: MxAddress;
  /** "NAME[IP]". */
  readonly host: string;
  /** "NAME[IP]:PORT", the relay= field. */
  readonly relay: string;
  features: Features = { esmtp: false, pipelining: false, size: undefined, dsn: false, smtputf8: false, eightBitMime: false, starttls: false };
  /** Transactions completed on this session. */
  uses = 0;
  readonly createdAt = Date.now();
  lastUsed = Date.now();
  secure = false;
  private socket: Socket;
  private readonly reader: ReplyReader;
  private readonly t: SmtpTimeouts;
  private dead = false;

  private constructor(address: MxAddress, socket: Socket, private readonly opts: SessionOptions) {
    this.address = address;
    this.host = hostDesc(address);
    this.relay = `${this.host}:${address.port}`;
    this.socket = socket;
    this.t = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.reader = new ReplyReader(opts.lineLengthLimit ?? 2048);
    this.attach(socket);
  }

  private attach(sock: Socket): void {
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

  /** Connects, reads the greeting, says EHLO/HELO and negotiates TLS. */
  static async open(address: MxAddress, opts: SessionOptions): Promise<SmtpSession> {
    const t = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
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
    const session = new SmtpSession(address, socket, opts);
    try {
      await session.handshake();
    } catch (err) {
      session.destroy();
      throw err;
    }
    return session;
  }

  private async read(timeoutSec: number, stage: string): Promise<ServerReply> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const lines: string[] = await Promise.race([
        this.reader.next(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new SessionError('timeout', '4.4.2', `conversation with ${this.host} timed out while ${stage}`));
          }, timeoutSec * 1000);
        }),
      ]);
      return parseReply(lines);
    } catch (err) {
      if (err instanceof SessionError) {
        this.destroy();
        throw err;
      }
      this.destroy();
      throw new SessionError('lost', '4.4.2', `lost connection with ${this.host} while ${stage}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private write(data: string | Buffer, stage: string): void {
    if (!this.alive) throw new SessionError('lost', '4.4.2', `lost connection with ${this.host} while ${stage}`);
    this.socket.write(data);
  }

  private said(r: ServerReply, command: string): string {
    return `host ${this.host} said: ${r.text} (in reply to ${command} command)`;
  }

  private async handshake(): Promise<void> {
    const greeting = await this.read(this.t.smtp_helo_timeout, 'receiving the initial server greeting');
    if (greeting.code !== 220) {
      // Postfix: a 4xx or 5xx greeting makes it try the next MX host (the text says so).
      throw new SessionError('greeting', greeting.dsn, `host ${this.host} refused to talk to me: ${greeting.text}`, greeting);
    }
    await this.hello();
    const level = this.opts.tlsLevel ?? 'none';
    if (level === 'none') return;
    if (!this.features.starttls) {
      if (level === 'may') return;
      throw new SessionError('tls', '4.7.4', `TLS is required, but was not offered by host ${this.host}`);
    }
    this.write('STARTTLS\r\n', 'performing the STARTTLS handshake');
    const r = await this.read(this.t.smtp_helo_timeout, 'sending STARTTLS');
    if (r.code !== 220) {
      if (level === 'may') return; // opportunistic: carry on in plain text
      throw new SessionError('tls', r.code >= 500 ? '4.7.5' : r.dsn, this.said(r, 'STARTTLS'), r);
    }
    await this.startTls(level);
    await this.hello();
  }

  private async hello(): Promise<void> {
    this.write(`EHLO ${this.opts.heloName}\r\n`, 'performing the EHLO handshake');
    let r = await this.read(this.t.smtp_helo_timeout, 'performing the EHLO handshake');
    if (r.code >= 500) {
      this.write(`HELO ${this.opts.heloName}\r\n`, 'performing the HELO handshake');
      r = await this.read(this.t.smtp_helo_timeout, 'performing the HELO handshake');
      if (r.code !== 250) throw new SessionError('reply', r.dsn, this.said(r, 'HELO'), r);
      this.features = { esmtp: false, pipelining: false, size: undefined, dsn: false, smtputf8: false, eightBitMime: false, starttls: false };
      return;
    }
    if (r.code !== 250) throw new SessionError('reply', r.dsn, this.said(r, 'EHLO'), r);
    const f: Features = { esmtp: true, pipelining: false, size: undefined, dsn: false, smtputf8: false, eightBitMime: false, starttls: false };
    // The first line is the greeting name; each further line is a keyword with parameters.
    const lines = r.lines.slice(1);
    for (const line of lines) {
      const words = line.slice(4).trim().split(/\s+/);
      const kw = (words[0] ?? '').toUpperCase();
      if (kw === 'PIPELINING') f.pipelining = true;
      else if (kw === 'DSN') f.dsn = true;
      else if (kw === 'SMTPUTF8') f.smtputf8 = true;
      else if (kw === '8BITMIME') f.eightBitMime = true;
      else if (kw === 'STARTTLS') f.starttls = true;
      else if (kw === 'SIZE') {
        const n = Number(words[1]);
        f.size = Number.isFinite(n) && n > 0 ? n : 0;
      }
    }
    this.features = f;
  }

  private async startTls(level: TlsLevel): Promise<void> {
    const verify = level === 'verify' || level === 'secure';
    const name = this.address.name;
    const servername = /^[\d.]+$|:/.test(name) ? undefined : name;
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    this.reader.reset();
    const tls = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({
        socket: plain,
        servername,
        ca: this.opts.tlsCa,
        rejectUnauthorized: false,
        // The name check is ours (below), against the MX host name; Node's default would
        // check "localhost" when there is no SNI name and fold that into `authorized`.
        checkServerIdentity: () => undefined,
        minVersion: 'TLSv1',
      });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new SessionError('timeout', '4.4.2', `conversation with ${this.host} timed out while performing the STARTTLS handshake`));
      }, this.t.smtp_starttls_timeout * 1000);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(new SessionError('tls', '4.7.5', `TLS handshake failed with ${this.host}: ${err.message}`));
      });
    }).catch((err) => {
      this.dead = true;
      plain.destroy();
      throw err;
    });
    let trust: 'Verified' | 'Trusted' | 'Untrusted' = 'Untrusted';
    const cert = tls.getPeerCertificate() as PeerCertificate;
    if (tls.authorized) {
      // smtp_tls_verify_cert_match = hostname: the MX host name must match the certificate.
      const mismatch = checkServerIdentity(name, cert);
      trust = mismatch ? 'Trusted' : 'Verified';
    }
    if (verify && trust !== 'Verified') {
      tls.destroy();
      this.dead = true;
      const why = tls.authorized ? 'hostname mismatch' : `untrusted issuer: ${tls.authorizationError ?? 'unknown'}`;
      throw new SessionError('tls', '4.7.5', `Server certificate not verified (${why}) for ${this.host}`);
    }
    this.socket = tls;
    this.secure = true;
    this.attach(tls);
    const cipher = tls.getCipher();
    this.opts.logger?.info(formatTlsLine(trust, this.relay, tls.getProtocol() ?? 'TLS', cipher.standardName ?? cipher.name));
  }

  /** MAIL FROM command text with the parameters the peer supports. */
  private mailCommand(tx: Transaction, utf8: boolean): string {
    let cmd = `MAIL FROM:<${tx.sender}>`;
    if (this.features.size !== undefined && tx.size !== undefined) cmd += ` SIZE=${tx.size}`;
    if (tx.bodyType === '8BITMIME' && this.features.eightBitMime) cmd += ' BODY=8BITMIME';
    if (this.features.dsn) {
      if (tx.ret) cmd += ` RET=${tx.ret}`;
      if (tx.envid) cmd += ` ENVID=${xtext(tx.envid)}`;
    }
    if (utf8) cmd += ' SMTPUTF8';
    return cmd + '\r\n';
  }

  private rcptCommand(r: TxRecipient): string {
    let cmd = `RCPT TO:<${r.address}>`;
    if (this.features.dsn) {
      if (r.notify && r.notify.length) cmd += ` NOTIFY=${r.notify.join(',')}`;
      if (r.orcpt) {
        const semi = r.orcpt.indexOf(';');
        const type = semi > 0 ? r.orcpt.slice(0, semi) : 'rfc822';
        const addr = semi > 0 ? r.orcpt.slice(semi + 1) : r.orcpt;
        cmd += ` ORCPT=${type};${xtext(addr)}`;
      }
    }
    return cmd + '\r\n';
  }

  /** A reply's outcome for a recipient: a 2xx keeps the reply text, failures say who said it. */
  private outcome(address: string, r: ServerReply, command: string): RecipientOutcome {
    const klass = r.code >= 200 && r.code < 300 ? 2 : r.code >= 500 && r.code < 600 ? 5 : 4;
    const dsn = klass === 4 && !r.dsn.startsWith('4') ? '4.0.0' : r.dsn;
    return { address, klass, dsn, text: klass === 2 ? r.text : this.said(r, command) };
  }

  private every(tx: Transaction, klass: 4 | 5, dsn: string, text: string): RecipientOutcome[] {
    return tx.recipients.map((r) => ({ address: r.address, klass, dsn, text }));
  }

  /**
   * Runs one mail transaction and returns one outcome per recipient. Throws SessionError when the
   * session breaks (lost connection, timeout): the caller decides for the recipients left.
   * `onSetupDone` is called when the first command is written (end of connection setup).
   */
  async transaction(tx: Transaction): Promise<RecipientOutcome[]> {
    this.lastUsed = Date.now();
    const needUtf8 = !!tx.smtputf8 && (!isAscii(tx.sender) || tx.recipients.some((r) => !isAscii(r.address)));
    if (needUtf8 && !this.features.smtputf8) {
      return this.every(tx, 5, '5.6.7', `SMTPUTF8 is required, but was not offered by host ${this.host}`);
    }
    const useUtf8 = !!tx.smtputf8 && this.features.smtputf8;
    if (tx.body && this.features.size && tx.size !== undefined && tx.size > this.features.size) {
      return this.every(tx, 5, '5.3.4', `message size ${tx.size} exceeds size limit ${this.features.size} of server ${this.host}`);
    }
    const mail = this.mailCommand(tx, useUtf8);
    const rcpts = tx.recipients.map((r) => this.rcptCommand(r));
    const results: RecipientOutcome[] = [];
    const accepted: number[] = [];
    let dataReply: ServerReply | undefined;

    if (this.features.pipelining) {
      // RFC 2920: MAIL, all RCPTs and DATA go out in one write; replies come back in order.
      this.write(mail + rcpts.join('') + (tx.body ? 'DATA\r\n' : ''), 'sending MAIL FROM');
      const mr = await this.read(this.t.smtp_mail_timeout, 'sending MAIL FROM');
      const rrs: ServerReply[] = [];
      for (let i = 0; i < rcpts.length; i++) rrs.push(await this.read(this.t.smtp_rcpt_timeout, 'sending RCPT TO'));
      if (tx.body) dataReply = await this.read(this.t.smtp_data_init_timeout, 'sending DATA command');
      if (mr.code !== 250) {
        this.uses++;
        if (dataReply?.code === 354) await this.abortData();
        return tx.recipients.map((r) => this.outcome(r.address, mr, 'MAIL FROM'));
      }
      tx.recipients.forEach((r, i) => {
        const o = this.outcome(r.address, rrs[i], 'RCPT TO');
        results.push(o);
        if (o.klass === 2) accepted.push(i);
      });
      if (!tx.body) {
        this.uses++;
        return results;
      }
      if (!accepted.length) {
        // Every RCPT failed; a server that still said 354 gets an empty message end.
        if (dataReply?.code === 354) await this.abortData();
        this.uses++;
        return results;
      }
    } else {
      this.write(mail, 'sending MAIL FROM');
      const mr = await this.read(this.t.smtp_mail_timeout, 'sending MAIL FROM');
      if (mr.code !== 250) {
        this.uses++;
        return tx.recipients.map((r) => this.outcome(r.address, mr, 'MAIL FROM'));
      }
      for (let i = 0; i < rcpts.length; i++) {
        this.write(rcpts[i], 'sending RCPT TO');
        const rr = await this.read(this.t.smtp_rcpt_timeout, 'sending RCPT TO');
        const o = this.outcome(tx.recipients[i].address, rr, 'RCPT TO');
        results.push(o);
        if (o.klass === 2) accepted.push(i);
      }
      if (!tx.body || !accepted.length) {
        this.uses++;
        return results;
      }
      this.write('DATA\r\n', 'sending DATA command');
      dataReply = await this.read(this.t.smtp_data_init_timeout, 'sending DATA command');
    }

    if (!dataReply || dataReply.code !== 354) {
      const r = dataReply!;
      for (const i of accepted) results[i] = this.outcome(tx.recipients[i].address, r, 'DATA');
      this.uses++;
      return results;
    }
    await this.sendBody(tx.body!);
    const done = await this.read(this.t.smtp_data_done_timeout, 'sending end of data -- message may be sent more than once');
    for (const i of accepted) results[i] = this.outcome(tx.recipients[i].address, done, 'end of DATA');
    this.uses++;
    return results;
  }

  private async abortData(): Promise<void> {
    this.write('.\r\n', 'sending end of data -- message may be sent more than once');
    await this.read(this.t.smtp_data_done_timeout, 'sending end of data -- message may be sent more than once');
  }

  /** Streams the content through the DATA encoder, each write bounded by smtp_data_xfer_timeout. */
  private async sendBody(body: () => Readable): Promise<void> {
    const stage = 'sending message body';
    const enc = new DataEncoder(this.opts.smtpLineLengthLimit ?? 998);
    const src = body();
    src.on('error', (err) => enc.destroy(err));
    src.pipe(enc);
    const sock = this.socket;
    try {
      for await (const chunk of enc) {
        if (!this.alive) throw new SessionError('lost', '4.4.2', `lost connection with ${this.host} while ${stage}`);
        if (!sock.write(chunk as Buffer)) {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => {
              cleanup();
              reject(new SessionError('timeout', '4.4.2', `conversation with ${this.host} timed out while ${stage}`));
            }, this.t.smtp_data_xfer_timeout * 1000);
            const onDrain = () => { cleanup(); resolve(); };
            const onClose = () => { cleanup(); reject(new SessionError('lost', '4.4.2', `lost connection with ${this.host} while ${stage}`)); };
            const cleanup = () => {
              clearTimeout(timer);
              sock.off('drain', onDrain);
              sock.off('close', onClose);
            };
            sock.on('drain', onDrain);
            sock.on('close', onClose);
          });
        }
      }
    } catch (err) {
      src.destroy();
      this.destroy();
      if (err instanceof SessionError) throw err;
      // The content could not be read (queue file problem): not the peer's fault, try later.
      throw new SessionError('policy', '4.3.0', `error reading message content: ${(err as Error).message}`);
    }
  }

  /** RSET between transactions; false when the session is no longer usable. */
  async reset(): Promise<boolean> {
    if (!this.alive) return false;
    try {
      this.write('RSET\r\n', 'sending RSET probe');
      const r = await this.read(this.t.smtp_rset_timeout, 'sending RSET probe');
      if (r.code !== 250) {
        this.destroy();
        return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  /** QUIT and close; never throws. */
  async quit(): Promise<void> {
    if (!this.alive) return;
    try {
      this.write('QUIT\r\n', 'sending QUIT');
      await this.read(this.t.smtp_quit_timeout, 'sending QUIT');
    } catch {
      /* the peer may close first */
    }
    this.destroy();
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
