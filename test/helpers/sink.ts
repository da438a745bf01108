// Test helper: an SMTP sink built with smtp-server that plays the primary MX (or any other peer)
// on a loopback address. It records every accepted message byte for byte (after the DATA
// terminator and dot-unstuffing, exactly as smtp-server hands it over), the envelope with its
// DSN parameters, and counts connections and RCPT commands. Replies can be scripted per stage.
// Trusts nothing it receives; it is only ever bound to 127.0.0.0/8 or ::1.
//
// Also here: makeTestCert(), a self-signed certificate made with the system `openssl`, for
// STARTTLS tests (the certificate is its own CA, so it doubles as the CA file for `verify`).

import { SMTPServer, type SMTPServerAddress, type SMTPServerSession } from 'smtp-server';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo, Socket } from 'node:net';

export interface SinkReply {
  code: number;
  /** Reply text after the code, including any enhanced status code, e.g. "5.1.1 <a@b>: ...". */
  text: string;
}

export interface SinkMessage {
  from: string;
  to: string[];
  /** The message content as received, CRLF line endings preserved, terminator removed. */
  raw: Buffer;
  /** DSN parameters: RET/ENVID from MAIL, NOTIFY/ORCPT per recipient (same order as `to`). */
  dsn: { ret?: string; envid?: string; rcpt: Array<{ notify?: string[]; orcpt?: string }> };
  /** MAIL FROM parameters as given (upper-case keys), e.g. SIZE, SMTPUTF8, BODY. */
  mailArgs: Record<string, string | boolean>;
  /** True when the message came over a TLS-protected session. */
  secure: boolean;
  /** HELO/EHLO name the client gave. */
  helo: string;
}

export interface SinkOptions {
  /** Loopback address to bind, default 127.0.0.2. */
  host?: string;
  /** Port, default 0 (ephemeral). */
  port?: number;
  /** Known recipients (compared case-insensitively); others get 550 5.1.1 User unknown. Unset: all accepted. */
  users?: string[];
  /** Scripted RCPT reply; return undefined to fall back to `users`. A 2xx code accepts. */
  rcptReply?: (address: string) => SinkReply | undefined;
  /** Scripted MAIL FROM reply; undefined or 2xx accepts. */
  mailReply?: (address: string) => SinkReply | undefined;
  /** Scripted reply after DATA (the message is recorded only when the reply is 2xx). */
  dataReply?: (msg: SinkMessage) => SinkReply | undefined;
  /** Delay before the 220 greeting, in milliseconds. */
  delayMs?: number;
  /** Scripted greeting for the nth connection (1-based): a reply (e.g. 421) instead of 220, then close. */
  connectReply?: (n: number) => SinkReply | undefined;
  /** Offer STARTTLS with this key and certificate (PEM). Without it STARTTLS is not offered. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** SIZE limit to announce and enforce (0: none). */
  size?: number;
  /** Do not announce these EHLO keywords. */
  hide?: Array<'PIPELINING' | 'DSN' | 'SMTPUTF8' | '8BITMIME'>;
  /** Banner text after "220 ". */
  banner?: string;
  /**
   * Replies to one batch of input leave in one write, as Postfix's smtpd sends them: it puts its
   * replies into the stream buffer and flushes when it must wait for the client (smtpd_chat.c),
   * so a pipelined MAIL/RCPT/DATA group gets its three replies in one segment. Default: each
   * reply is its own write, as smtp-server makes it.
   */
  flushPerInput?: boolean;
}

export interface Sink {
  host: string;
  port: number;
  messages: SinkMessage[];
  /** RCPT commands seen (accepted or not). */
  rcptCommands: number;
  /** MAIL commands seen. */
  mailCommands: number;
  /** Connections accepted so far. */
  connections: number;
  /** Connections open right now. */
  concurrent: number;
  /** Highest number of simultaneously open connections. */
  peakConnections: number;
  /** Resolves when at least n messages arrived; rejects after timeoutMs. */
  waitFor(n: number, timeoutMs?: number): Promise<SinkMessage[]>;
  close(): Promise<void>;
}

function smtpError(r: SinkReply): Error & { responseCode: number } {
  const err = new Error(r.text) as Error & { responseCode: number };
  err.responseCode = r.code;
  return err;
}

function stringArgs(args: object | false | undefined): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  if (!args) return out;
  for (const [k, v] of Object.entries(args)) out[k.toUpperCase()] = typeof v === 'boolean' ? v : String(v);
  return out;
}

export async function startSink(opts: SinkOptions = {}): Promise<Sink> {
  const host = opts.host ?? '127.0.0.2';
  const users = opts.users ? new Set(opts.users.map((u) => u.toLowerCase())) : null;
  const hide = new Set(opts.hide ?? []);
  const waiters: Array<{ n: number; resolve: (m: SinkMessage[]) => void }> = [];

  const state = {
    messages: [] as SinkMessage[],
    rcptCommands: 0,
    mailCommands: 0,
    connections: 0,
    concurrent: 0,
    peakConnections: 0,
  };

  const server = new SMTPServer({
    banner: opts.banner ?? 'sink ESMTP',
    // Replies carry their own enhanced status codes (the scripted ones include them), so
    // smtp-server must not add a second one.
    hideENHANCEDSTATUSCODES: true,
    hideDSN: hide.has('DSN'),
    hidePIPELINING: hide.has('PIPELINING'),
    hideSMTPUTF8: hide.has('SMTPUTF8'),
    hide8BITMIME: hide.has('8BITMIME'),
    hideSTARTTLS: !opts.tls,
    ...(opts.tls ? { key: opts.tls.key, cert: opts.tls.cert } : {}),
    size: opts.size ?? 0,
    authOptional: true,
    disabledCommands: ['AUTH'],
    logger: false,
    onConnect(_session, cb) {
      state.connections++;
      state.concurrent++;
      state.peakConnections = Math.max(state.peakConnections, state.concurrent);
      const refuse = opts.connectReply?.(state.connections);
      const go = () => (refuse ? cb(Object.assign(new Error(refuse.text), { responseCode: refuse.code })) : cb());
      if (opts.delayMs) setTimeout(go, opts.delayMs);
      else go();
    },
    onClose() {
      state.concurrent--;
    },
    onMailFrom(address: SMTPServerAddress, _session, cb) {
      state.mailCommands++;
      const r = opts.mailReply?.(address.address);
      if (r && r.code >= 400) return cb(smtpError(r));
      cb();
    },
    onRcptTo(address: SMTPServerAddress, _session, cb) {
      state.rcptCommands++;
      const scripted = opts.rcptReply?.(address.address);
      if (scripted) return scripted.code >= 400 ? cb(smtpError(scripted)) : cb();
      if (users && !users.has(address.address.toLowerCase())) {
        return cb(smtpError({ code: 550, text: `5.1.1 <${address.address}>: Recipient address rejected: User unknown` }));
      }
      cb();
    },
    onData(stream, session: SMTPServerSession, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const env = session.envelope as SMTPServerSession['envelope'] & { dsn?: { ret?: string; envid?: string } };
        const rcpts = env.rcptTo as Array<SMTPServerAddress & { dsn?: { notify?: string[]; orcpt?: string } }>;
        const from = env.mailFrom ? env.mailFrom.address : '';
        const msg: SinkMessage = {
          from,
          to: rcpts.map((r) => r.address),
          raw: Buffer.concat(chunks),
          dsn: {
            ret: env.dsn?.ret ?? undefined,
            envid: env.dsn?.envid ?? undefined,
            rcpt: rcpts.map((r) => ({ notify: r.dsn?.notify, orcpt: r.dsn?.orcpt })),
          },
          mailArgs: stringArgs(env.mailFrom ? env.mailFrom.args : undefined),
          secure: !!session.secure,
          helo: session.hostNameAppearsAs,
        };
        if ((stream as unknown as { sizeExceeded?: boolean }).sizeExceeded) {
          return cb(smtpError({ code: 552, text: '5.3.4 Error: message file too big' }));
        }
        const r = opts.dataReply?.(msg);
        if (r && r.code >= 400) return cb(smtpError(r));
        state.messages.push(msg);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (state.messages.length >= waiters[i].n) {
            waiters[i].resolve(state.messages.slice());
            waiters.splice(i, 1);
          }
        }
        cb(null, r ? r.text : `2.0.0 Ok: queued as SINK${state.messages.length}`);
      });
    },
  });
  server.on('error', () => {
    /* client-side resets are expected in tests */
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  if (opts.flushPerInput) {
    // Before smtp-server's own listeners: cork when input arrives, uncork once this turn's replies are written.
    server.server.prependListener('connection', (socket: Socket) => {
      socket.prependListener('data', () => {
        socket.cork();
        setImmediate(() => socket.uncork());
      });
    });
  }

  return {
    host,
    port,
    get messages() { return state.messages; },
    get rcptCommands() { return state.rcptCommands; },
    get mailCommands() { return state.mailCommands; },
    get connections() { return state.connections; },
    get concurrent() { return state.concurrent; },
    get peakConnections() { return state.peakConnections; },
    waitFor(n: number, timeoutMs = 5000): Promise<SinkMessage[]> {
      if (state.messages.length >= n) return Promise.resolve(state.messages.slice());
      return new Promise((resolve, reject) => {
        const w = {
          n,
          resolve: (m: SinkMessage[]) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        const timer = setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) waiters.splice(i, 1);
          reject(new Error(`sink ${host}:${port}: ${state.messages.length} of ${n} messages after ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    close(): Promise<void> {
      return new Promise((resolve) => {
        // smtp-server waits for open sessions up to closeTimeout; end them at once.
        const conns = (server as unknown as { connections: Set<{ _socket?: { destroy(): void } }> }).connections;
        server.close(() => resolve());
        for (const c of conns ?? []) c._socket?.destroy();
      });
    },
  } as Sink;
}

export interface TestCert {
  key: string;
  cert: string;
  /** Path of the certificate file (usable as a CA file: it is self-signed). */
  certFile: string;
  dir: string;
  remove(): void;
}

/**
 * A self-signed certificate for `names` (DNS names) and `ips`, made with the system openssl in
 * a fresh temporary folder. The first name is the subject CN.
 */
export function makeTestCert(names: string[] = ['localhost'], ips: string[] = ['127.0.0.1']): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'backstop-cert-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const san = [...names.map((n) => `DNS:${n}`), ...ips.map((i) => `IP:${i}`)].join(',');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${names[0]}`,
    '-addext', `subjectAltName=${san}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
  ], { stdio: 'ignore', timeout: 10_000 });
  return {
    key: readFileSync(keyFile, 'utf8'),
    cert: readFileSync(certFile, 'utf8'),
    certFile,
    dir,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
