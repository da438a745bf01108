// One SMTP session's life cycle and dispatch, Postfix's way. This is the single place where
// smtp-server is extended: BackstopConnection subclasses its SMTPConnection and replaces the
// command dispatch with Postfix's command table (error counting, junk commands, pipelining rules,
// bare <LF>, the record deadline), while smtp-server keeps doing what it does well: the socket
// life cycle, the STARTTLS upgrade (parser retired, plaintext discarded) and DATA's terminator and
// dot-unstuffing. Each command's handler lives in commands/, the session's state in session.ts,
// the CONNECT stage (client name, anvil limits) in connect.ts, the engine's verdicts in verdict.ts.
// Trusts its handlers. Trusts nothing the client sends.

import type net from 'node:net';
import { isUtf8 } from 'node:buffer';
import type { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { reply, formatReply, type Reply } from '../mail/index.js';
import type { Logger } from '../log/index.js';
import type { SmtpdSettings } from './settings.js';
import { CommandStream, type LineInfo } from './stream.js';
import { SessionState, type SessionContext } from './session.js';
import { connectStage } from './connect.js';
import { R } from './replies.js';
import * as slog from './log.js';
import { ehlo } from './commands/ehlo.js';
import { starttls } from './commands/starttls.js';
import { auth } from './commands/auth.js';
import { mail } from './commands/mail.js';
import { rcpt } from './commands/rcpt.js';
import { data } from './commands/data.js';
import { bdat } from './commands/bdat.js';
import { isHeader, escapeBytes, printable } from './nonsmtp.js';
import { etrn } from './commands/etrn.js';
import { rset, noop, vrfy, quit, xcommand } from './commands/misc.js';

/** A handler's result: success, failure, or null when the command's outcome is counted later. */
export type Handler = (c: BackstopConnection, arg: string) => Promise<boolean | null>;

interface CommandDef {
  handler: Handler;
  /** RFC 2920: may only be the last command of a pipelined group. */
  last: boolean;
  /** Counts toward smtpd_junk_command_limit. */
  junk: boolean;
}

/**
 * Postfix's smtpd_cmd_table: command → handler and flags. `last`: HELO, EHLO, DATA, NOOP, VRFY
 * (RFC 2920's list; Postfix lets AUTH, STARTTLS, ETRN and BDAT be pipelined); `junk`: Postfix's
 * SMTPD_CMD_FLAG_LIMIT (HELO, EHLO, RSET, NOOP, VRFY, ETRN).
 */
const COMMANDS: Record<string, CommandDef> = {
  HELO: { handler: (c, a) => ehlo(c, a, false), last: true, junk: true },
  EHLO: { handler: (c, a) => ehlo(c, a, true), last: true, junk: true },
  XCLIENT: { handler: xcommand('XCLIENT'), last: false, junk: false },
  XFORWARD: { handler: xcommand('XFORWARD'), last: false, junk: false },
  STARTTLS: { handler: starttls, last: false, junk: false },
  AUTH: { handler: auth, last: false, junk: false },
  MAIL: { handler: mail, last: false, junk: false },
  RCPT: { handler: rcpt, last: false, junk: false },
  DATA: { handler: data, last: true, junk: false },
  BDAT: { handler: bdat, last: false, junk: false },
  RSET: { handler: rset, last: false, junk: true },
  NOOP: { handler: noop, last: true, junk: true },
  VRFY: { handler: vrfy, last: true, junk: true },
  ETRN: { handler: etrn, last: false, junk: true },
  QUIT: { handler: quit, last: false, junk: false },
};

let instanceCounter = 0;

export class BackstopConnection extends SMTPConnection {
  readonly ctx: SessionContext;
  readonly settings: SmtpdSettings;
  readonly log: Logger;
  readonly instance: string;
  readonly state: SessionState;
  errorCount = 0;
  /** The session's end is logged already (timeout, 421, QUIT): no "lost connection" line. */
  ended = false;
  /** Inside DATA: the record deadline still applies, the command loop waits. */
  inData = false;
  dataBytes = 0;
  /** Reading a BDAT chunk (for the `lost connection after BDAT (N bytes)` line). */
  inBdat = false;
  bdatBytes = 0;
  /** An AUTH exchange waits for the client's next line. */
  authNext?: (line: string) => Promise<void>;
  /** Counted by anvil: released once when the session ends. */
  anvilCounted = false;
  /** smtpd_forbid_bare_newline_exclusions lists this client (decided once, at connect). */
  bareLfExempt = false;
  junkCount = 0;
  private pregreet = false;
  private stash: Array<() => void> = [];
  private lastCommand = 'CONNECT';
  private readonly stats = new Map<string, slog.CommandStat>();
  private endLogged = false;
  private deadline?: NodeJS.Timeout;

  constructor(server: SMTPServer, socket: net.Socket, options: object, ctx: SessionContext) {
    super(server, socket, options);
    this.ctx = ctx;
    this.settings = ctx.settings;
    this.log = ctx.log;
    this.name = this.settings.myhostname;
    this.instance = `${process.pid.toString(16)}.${(++instanceCounter).toString(16)}`;
    this.state = new SessionState(this);
    // The base constructor built a parser before our fields existed; build ours now.
    this._parser = this._createParser();
  }

  // --- smtp-server hooks ----------------------------------------------------------------

  override _createParser(): CommandStream {
    const max = this.settings ? this.settings.lineLengthLimit : 2048;
    const p = new CommandStream(max);
    p.online = (line, info, next) => this.onLine(line, info, next);
    p.socketPending = () => this._socket?.readableLength ?? 0;
    p.onBytes = () => {
      if (!this._ready) this.pregreet = true;
    };
    p.on('error', () => this.close());
    return p;
  }

  override _armTimeout(socket: net.Socket = this._socket): void {
    socket.setTimeout((this.settings?.timeout ?? 300) * 1000, () => this._onTimeout());
  }

  override init(): void {
    this._setListeners(() => void this.setup());
  }

  private async setup(): Promise<void> {
    const ready = await connectStage(this);
    if (ready === 'closed') return this.finish();
    if (ready) this.connectionReady();
  }

  override _sendGreeting(): void {
    this.send(220, this.settings.banner, false);
    this.armDeadline();
    if (this.pregreet && this.settings.forbidUnauthPipelining) {
      slog.logPipelining(this.log, 'CONNECT', this.state.client, '');
      this.state.illegalPipelining = true;
      this.ended = true;
      this.send(554, '5.5.0 Error: SMTP protocol synchronization', false);
      this.close();
      return;
    }
    if (this.pregreet) this.state.illegalPipelining = true;
    const stash = this.stash;
    this.stash = [];
    for (const resume of stash) resume();
  }

  override _onTimeout(): void {
    if (this._closing) {
      this._socket.destroy();
      return;
    }
    if (this._handlerPending) {
      this._armTimeout();
      return;
    }
    this.timeoutExceeded();
  }

  private timeoutExceeded(): void {
    if (this._closing || this._closed) return;
    slog.logAfter(this.log, 'timeout', this.lastCommand, this.state.client, this.inData ? ` (${this.dataBytes} bytes)` : '');
    this.ended = true;
    this.send(421, `4.4.2 ${this.settings.myhostname} Error: timeout exceeded`, false);
  }

  /**
   * The record deadline: smtp-server's idle timer restarts on every byte, so a client that sends
   * one byte at a time would never time out. This timer restarts only when a whole line (a
   * record) has arrived, so each command — and each line of DATA — must arrive within
   * smtpd_timeout (Postfix's smtpd_per_record_deadline, always on).
   */
  armDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      if (this._handlerPending) return this.armDeadline();
      this.timeoutExceeded();
    }, this.settings.timeout * 1000);
    this.deadline.unref();
  }

  override _onClose(): void {
    super._onClose();
    this.finish();
  }

  private finish(): void {
    if (this.endLogged) return;
    this.endLogged = true;
    if (this.deadline) clearTimeout(this.deadline);
    const client = this.state.client;
    if (client) {
      if (!this.ended) slog.logAfter(this.log, 'lost connection', this.lastCommand, client, this.inData ? ` (${this.dataBytes} bytes)` : this.inBdat ? ` (${this.bdatBytes} bytes)` : '');
      // Postfix counts a command cut off by the client as tried, not done.
      if (!this.ended && this.inData) this.count('data', false);
      if (!this.ended && this.inBdat) this.count('bdat', false);
      this.state.resetTransaction();
      slog.logDisconnect(this.log, client, this.stats);
    }
    if (this.anvilCounted) this.ctx.anvil.disconnect(this.remoteAddress);
    this.ctx.release();
  }

  // --- replies ------------------------------------------------------------------------

  /** Send a reply; 4xx/5xx count as errors, and past smtpd_soft_error_limit every reply waits. */
  async respond(r: Reply | { code: number; lines: string[] }, opts: { error?: boolean } = {}): Promise<void> {
    if (r.code >= 400 && opts.error !== false) this.errorCount++;
    if (this.errorCount >= this.settings.softErrorLimit && this.settings.errorSleepTime > 0) {
      this._handlerPending = true;
      await sleep(this.settings.errorSleepTime * 1000);
    }
    if (this._closing || this._closed) return;
    if ('lines' in r) this.send(r.code, r.lines, false);
    else this.send(r.code, formatReply(r).slice(4), false);
  }

  /** Count a command for the disconnect line (`rcpt=0/1`). */
  count(name: string, ok: boolean): void {
    const s = this.stats.get(name) ?? { ok: 0, total: 0 };
    s.total++;
    if (ok) s.ok++;
    this.stats.set(name, s);
  }

  // --- the command loop ---------------------------------------------------------------

  private onLine(lineBuf: Buffer, info: LineInfo, next: () => void): void {
    if (!this._ready) {
      // Talk before the greeting: held until the greeting decides (smtpd_forbid_unauth_pipelining).
      this.pregreet = true;
      this.stash.push(() => this.onLine(lineBuf, info, next));
      return;
    }
    if (this._upgrading || this._closing || this._closed) return next();
    this.armDeadline();
    this._handlerPending = true;
    this.dispatch(lineBuf, info)
      .catch((err: unknown) => {
        this.log.warning(`${this.state.client}: internal error in ${this.lastCommand}: ${(err as Error).message}`);
        if (!this._closing) this.send(451, '4.3.0 Error: internal server error', false);
      })
      .finally(() => {
        if (!this.inData) this._handlerPending = false;
        this._whenWritable(next);
      });
  }

  private async dispatch(lineBuf: Buffer, info: LineInfo): Promise<void> {
    const s = this.settings;
    const client = this.state.client;
    if (info.bareLf && s.forbidBareNewline === 'reject' && !this.bareLfExempt) {
      this.log.info(`bare <LF> received after ${this.lastCommand} from ${client}`);
      this.authNext = undefined;
      this.count('unknown', false);
      await this.respond(reply(550, '5.5.2', `${s.myhostname} Error: bare <LF> received`));
      return this.afterCommand();
    }
    if (info.bareLf && s.forbidBareNewline === 'note') this.log.info(`bare <LF> received after ${this.lastCommand} from ${client}`);
    if (info.tooLong) this.log.warning(`${client}: request longer than ${s.lineLengthLimit}: ${printable(lineBuf.subarray(0, 30))}...`);
    if (this.authNext) {
      const cont = this.authNext;
      this.authNext = undefined;
      await cont(lineBuf.toString('latin1'));
      return this.afterCommand();
    }
    // Postfix's buffers are C strings: a command ends at its first NUL.
    const nul = lineBuf.indexOf(0);
    const cmdBuf = nul >= 0 ? lineBuf.subarray(0, nul) : lineBuf;
    // Malformed UTF-8 would become U+FFFD and reach the envelope: refused before parsing.
    if (s.smtputf8 && !isUtf8(lineBuf)) {
      await this.respond(R.badUtf8);
      return this.afterCommand();
    }
    const line = cmdBuf.toString('utf8').replace(/^[ \t]+/, '');
    const sp = line.search(/[ \t]/);
    const word = sp < 0 ? line : line.slice(0, sp);
    if (!word) {
      await this.respond(R.badSyntax);
      return this.afterCommand();
    }
    const name = word.toUpperCase();
    const arg = sp < 0 ? '' : line.slice(sp + 1).trim();
    const cmd = Object.prototype.hasOwnProperty.call(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!cmd) {
      this.lastCommand = 'UNKNOWN';
      this.count('unknown', false);
      if (isHeader(word) || s.forbiddenCommands.matches(word)) {
        this.log.warning(`non-SMTP command from ${client}: ${escapeBytes(lineBuf).slice(0, 100)}`);
        this.ended = true;
        await this.respond(R.breakRules);
        this.close();
        return;
      }
      await this.respond(R.unknown);
      return this.afterCommand();
    }
    this.lastCommand = name;
    // RFC 2920 / Postfix smtpd_flag_ill_pipelining(): a command that must end a pipelined group,
    // or any command from a client that did not say EHLO, followed by more input. Flagged once;
    // with smtpd_forbid_unauth_pipelining the session ends.
    if ((cmd.last || !this.state.esmtp) && !this.state.illegalPipelining && info.pending()) {
      this.state.illegalPipelining = true;
      slog.logPipelining(this.log, name, client, escapeBytes(info.pendingBytes()));
      if (s.forbidUnauthPipelining) {
        this.count(name.toLowerCase(), false);
        this.ended = true;
        await this.respond(R.sync);
        this.close();
        return;
      }
    }
    const ok = await cmd.handler(this, arg);
    // DATA and BDAT LAST are counted when the message is in (or refused); AUTH when its exchange ends.
    if (ok !== null && (name !== 'DATA' || !ok)) this.count(name.toLowerCase(), ok);
    if (cmd.junk && this.junkCount++ > s.junkCommandLimit) this.errorCount++;
    if (name !== 'QUIT') await this.afterCommand();
  }

  /** Postfix checks the error limit before it reads the next command: 421 at once. */
  async afterCommand(): Promise<void> {
    const s = this.settings;
    if (this.errorCount < s.hardErrorLimit || this._closing || this._closed || this.ended) return;
    slog.logAfter(this.log, 'too many errors', this.lastCommand, this.state.client);
    this.ended = true;
    this.send(421, `4.7.0 ${s.myhostname} Error: too many errors`, false);
    this.close();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
