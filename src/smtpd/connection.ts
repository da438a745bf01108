// One SMTP session, Postfix's way. This is the single place where smtp-server is extended:
// BackstopConnection subclasses its SMTPConnection and replaces the command dispatch with
// Postfix's command table (replies, error counting, junk commands, pipelining rules, ETRN,
// AUTH through Dovecot), while smtp-server keeps doing what it does well: the socket life cycle,
// the STARTTLS upgrade (parser retired, plaintext discarded) and DATA's terminator and
// dot-unstuffing. BackstopServer subclasses SMTPServer only to construct this connection class.
// Trusts: the restriction engine's verdicts, the queue's accept(), the Dovecot server's
// OK/FAIL. Trusts nothing the client sends.

import type net from 'node:net';
import { PassThrough } from 'node:stream';
import { isUtf8 } from 'node:buffer';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { reply, formatReply, toSmtpError, SmtpError, type Reply, type Envelope, type EnvelopeRecipient } from '../mail/index.js';
import type { Logger } from '../log/index.js';
import type { RestrictionEngine, SessionInfo, Stage, Verdict } from './check/types.js';
import type { SmtpdSettings } from './settings.js';
import type { MessageSink, ClientNameLookup, AcceptOptions, Flusher } from './types.js';
import type { DovecotAuthClient, AuthStep } from './sasl/dovecot.js';
import { CommandStream, type LineInfo } from './stream.js';
import { LineEndingNormalizer, receivedHeader } from './body.js';
import type { Anvil } from './anvil.js';
import { clientListed, type SmtpdNetworks } from './networks.js';
import * as slog from './log.js';
import { splitAddressArg, addressSyntaxOk, parseParams, mailParams, rcptParams, validHostname, type MailParams } from './syntax.js';

/** What a session needs from its listener; fixed for the session's life (reload-safe). */
export interface SessionContext {
  settings: SmtpdSettings;
  /** The generation's network lists (event limit exceptions, bare newline exclusions). */
  networks: SmtpdNetworks;
  engine: RestrictionEngine;
  queue: MessageSink;
  flusher?: Flusher;
  dns?: ClientNameLookup;
  log: Logger;
  anvil: Anvil;
  sasl?: DovecotAuthClient;
  /** master.cf service name, for anvil warnings. */
  service: string;
  /** Called once when the session is over (engine reference counting). */
  release(): void;
}

/** A handler's result: success, failure, or null when the command's outcome is counted later. */
type Handler = (this: BackstopConnection, arg: string, line: string) => Promise<boolean | null>;

interface CommandDef {
  handler: Handler;
  /** RFC 2920: may only be the last command of a pipelined group. */
  last: boolean;
  /** Counts toward smtpd_junk_command_limit. */
  junk: boolean;
}

const R = {
  ok: reply(250, '2.0.0', 'Ok'),
  bye: reply(221, '2.0.0', 'Bye'),
  sync: reply(554, '5.5.0', 'Error: SMTP protocol synchronization'),
  unknown: reply(502, '5.5.2', 'Error: command not recognized'),
  badSyntax: reply(500, '5.5.2', 'Error: bad syntax'),
  badUtf8: reply(500, '5.5.2', 'Error: bad UTF-8 syntax'),
  declareSmtputf8: reply(553, '5.6.7', 'Must declare SMTPUTF8 to send unicode address'),
  tooLong: reply(500, '5.5.2', 'Error: command line too long'),
  needHelo: reply(503, '5.5.1', 'Error: send HELO/EHLO first'),
  needMail: reply(503, '5.5.1', 'Error: need MAIL command'),
  needRcpt: reply(503, '5.5.1', 'Error: need RCPT command'),
  nested: reply(503, '5.5.1', 'Error: nested MAIL command'),
  starttlsFirst: reply(530, '5.7.0', 'Must issue a STARTTLS command first'),
  sizeLimit: reply(552, '5.3.4', 'Message size exceeds fixed limit'),
  tooManyRcpts: reply(452, '4.5.3', 'Error: too many recipients'),
};

let instanceCounter = 0;

export class BackstopConnection extends SMTPConnection {
  readonly ctx: SessionContext;
  private readonly s: SmtpdSettings;
  private readonly log: Logger;
  readonly instance: string;
  private clientName = 'unknown';
  private reverseName = 'unknown';
  private nameTemp = false;
  private client = '';
  private helo?: string;
  private esmtp = false;
  private saslUser?: string;
  private saslMethod?: string;
  private sender?: string;
  private mailParams: MailParams = {};
  private rcpts: EnvelopeRecipient[] = [];
  private prepend: string[] = [];
  /** access(5) HOLD / DISCARD texts collected in this transaction. */
  private holdText: string | undefined;
  private discardText: string | undefined;
  /** Options of the queue write in progress (read by the queue when it commits). */
  private acceptOpts: AcceptOptions = {};
  private errorCount = 0;
  private junkCount = 0;
  private illegalPipelining = false;
  private pregreet = false;
  private stash: Array<() => void> = [];
  private lastCommand = 'CONNECT';
  private readonly stats = new Map<string, slog.CommandStat>();
  private endLogged = false;
  private ended = false;
  private deadline?: NodeJS.Timeout;
  private inData = false;
  private dataBytes = 0;
  private authNext?: (line: string) => Promise<void>;
  private connectVerdict?: Verdict;
  private afterStarttls = false;
  private anvilCounted = false;
  /** smtpd_forbid_bare_newline_exclusions lists this client (decided once, at connect). */
  private bareLfExempt = false;

  constructor(server: SMTPServer, socket: net.Socket, options: object, ctx: SessionContext) {
    super(server, socket, options);
    this.ctx = ctx;
    this.s = ctx.settings;
    this.log = ctx.log;
    this.name = this.s.myhostname;
    this.instance = `${process.pid.toString(16)}.${(++instanceCounter).toString(16)}`;
    // The base constructor built a parser before our fields existed; build ours now.
    this._parser = this._createParser();
  }

  // --- smtp-server hooks ----------------------------------------------------------------

  override _createParser(): CommandStream {
    const max = this.s ? this.s.lineLengthLimit : 2048;
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
    socket.setTimeout((this.s?.timeout ?? 300) * 1000, () => this._onTimeout());
  }

  override init(): void {
    this._setListeners(() => void this.setup());
  }

  private async setup(): Promise<void> {
    const ip = this.remoteAddress;
    if (this.s.peernameLookup && this.ctx.dns) {
      try {
        const n = await withTimeout(this.ctx.dns.clientName(ip), 10_000);
        if (n) {
          this.clientName = n.name;
          this.reverseName = n.reverseName;
          this.nameTemp = !!n.temporary;
        }
      } catch {
        this.nameTemp = true;
      }
    }
    this.client = slog.clientId(this.clientName, ip);
    const nets = this.ctx.networks;
    const exempt = await clientListed(nets.eventLimitExceptions, this.clientName, ip, this.log);
    this.bareLfExempt = await clientListed(nets.bareNewlineExclusions, this.clientName, ip, this.log);
    if (this._closing || this._closed) return this.finish();
    slog.logConnect(this.log, this.client);
    const a = this.ctx.anvil.connect(ip, {
      count: this.s.connectionCountLimit,
      rate: this.s.connectionRateLimit,
      unitSeconds: this.s.rateTimeUnit,
      exempt,
    });
    this.anvilCounted = true;
    if (!a.ok) {
      this.log.warning(
        a.reason === 'count'
          ? `Connection concurrency limit exceeded: ${a.count} from ${this.client} for service ${this.ctx.service}`
          : `Connection rate limit exceeded: ${a.rate} from ${this.client} for service ${this.ctx.service}`,
      );
      this.ended = true;
      this.send(421, `4.7.0 ${this.s.myhostname} Error: too many connections from ${ip}`, false);
      return;
    }
    const v = await this.check('connect');
    if (v.action === 'reject') this.connectVerdict = v;
    this.connectionReady();
  }

  override _sendGreeting(): void {
    this.send(220, this.s.banner, false);
    this.armDeadline();
    if (this.pregreet && this.s.forbidUnauthPipelining) {
      slog.logPipelining(this.log, 'CONNECT', this.client, '');
      this.illegalPipelining = true;
      this.ended = true;
      this.send(554, '5.5.0 Error: SMTP protocol synchronization', false);
      this.close();
      return;
    }
    if (this.pregreet) this.illegalPipelining = true;
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
    slog.logAfter(this.log, 'timeout', this.lastCommand, this.client, this.inData ? ` (${this.dataBytes} bytes)` : '');
    this.ended = true;
    this.send(421, `4.4.2 ${this.s.myhostname} Error: timeout exceeded`, false);
  }

  /**
   * The record deadline: smtp-server's idle timer restarts on every byte, so a client that sends
   * one byte at a time would never time out. This timer restarts only when a whole line (a
   * record) has arrived, so each command — and each line of DATA — must arrive within
   * smtpd_timeout (Postfix's smtpd_per_record_deadline, always on).
   */
  private armDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      if (this._handlerPending) return this.armDeadline();
      this.timeoutExceeded();
    }, this.s.timeout * 1000);
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
    if (this.client) {
      if (!this.ended) slog.logAfter(this.log, 'lost connection', this.lastCommand, this.client, this.inData ? ` (${this.dataBytes} bytes)` : '');
      slog.logDisconnect(this.log, this.client, this.stats);
    }
    if (this.anvilCounted) this.ctx.anvil.disconnect(this.remoteAddress);
    this.ctx.release();
  }

  // --- replies ------------------------------------------------------------------------

  /** Send a reply; 4xx/5xx count as errors, and past smtpd_soft_error_limit every reply waits. */
  private async respond(r: Reply | { code: number; lines: string[] }): Promise<void> {
    if (r.code >= 400) this.errorCount++;
    if (this.errorCount >= this.s.softErrorLimit && this.s.errorSleepTime > 0) {
      this._handlerPending = true;
      await sleep(this.s.errorSleepTime * 1000);
    }
    if (this._closing || this._closed) return;
    if ('lines' in r) this.send(r.code, r.lines, false);
    else this.send(r.code, formatReply(r).slice(4), false);
  }

  private count(name: string, ok: boolean): void {
    const s = this.stats.get(name) ?? { ok: 0, total: 0 };
    s.total++;
    if (ok) s.ok++;
    this.stats.set(name, s);
  }

  // --- restriction engine ---------------------------------------------------------------

  private protocolName(): string {
    return this.esmtp ? 'ESMTP' : 'SMTP';
  }

  private sessionInfo(stage: Stage, extra: Partial<SessionInfo> = {}): SessionInfo {
    return {
      stage,
      clientAddress: this.remoteAddress,
      clientPort: this.remotePort,
      clientName: this.clientName,
      reverseClientName: this.reverseName,
      clientNameTempFail: this.nameTemp,
      serverAddress: this.localAddress,
      serverPort: this.localPort,
      helo: this.helo,
      protocol: this.esmtp ? 'ESMTP' : 'SMTP',
      tls: this.secure,
      saslMethod: this.saslMethod,
      saslUsername: this.saslUser,
      sender: this.sender,
      recipient: this.rcpts.length ? this.rcpts[this.rcpts.length - 1].address : undefined,
      recipientCount: this.rcpts.length,
      size: this.mailParams.size,
      pipelined: this.illegalPipelining,
      instance: this.instance,
      ...extra,
    };
  }

  private async check(stage: Stage, extra: Partial<SessionInfo> = {}): Promise<Verdict> {
    try {
      const v = await this.ctx.engine.check(this.sessionInfo(stage, extra));
      if (v.action === 'reject' && !v.reply) {
        return { action: 'reject', reply: reply(451, '4.3.5', 'Server configuration error') };
      }
      return v;
    } catch (err) {
      // An engine failure is temporary, never a relay and never a permanent reject.
      this.log.warning(`restriction engine failed at ${stage} for ${this.client}: ${(err as Error).message}`);
      return { action: 'reject', reply: reply(451, '4.3.0', 'Error: server configuration problem') };
    }
  }

  private rejectCtx(stage: string, recipient?: string): slog.RejectContext {
    return { stage, client: this.client, sender: this.sender, recipient, protocol: this.protocolName(), helo: this.helo };
  }

  /** Answer a reject verdict and log it; returns true when the stage may go on. */
  private async applyVerdict(v: Verdict, stage: string, recipient?: string): Promise<boolean> {
    for (const w of v.warnings ?? []) slog.logWarn(this.log, this.rejectCtx(stage, recipient), w);
    if (v.action === 'accept') {
      // access(5) HOLD / DISCARD: the first one in a transaction decides, as in Postfix.
      if (v.discard !== undefined && this.discardText === undefined) {
        this.discardText = v.discard;
        slog.logAction(this.log, 'discard', this.rejectCtx(stage, recipient), v.discard);
      } else if (v.hold !== undefined && this.holdText === undefined && this.discardText === undefined) {
        this.holdText = v.hold;
        slog.logAction(this.log, 'hold', this.rejectCtx(stage, recipient), v.hold);
      }
      return true;
    }
    const r = v.reply as Reply;
    slog.logReject(this.log, this.rejectCtx(stage, recipient), r);
    await this.respond(r);
    return false;
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
        this.log.warning(`${this.client}: internal error in ${this.lastCommand}: ${(err as Error).message}`);
        if (!this._closing) this.send(451, '4.3.0 Error: internal server error', false);
      })
      .finally(() => {
        if (!this.inData) this._handlerPending = false;
        this._whenWritable(next);
      });
  }

  private async dispatch(lineBuf: Buffer, info: LineInfo): Promise<void> {
    if (this.errorCount >= this.s.hardErrorLimit) {
      slog.logAfter(this.log, 'too many errors', this.lastCommand, this.client);
      this.ended = true;
      this.send(421, `4.7.0 ${this.s.myhostname} Error: too many errors`, false);
      return;
    }
    if (info.bareLf && this.s.forbidBareNewline === 'reject' && !this.bareLfExempt) {
      this.log.info(`bare <LF> received after ${this.lastCommand} from ${this.client}`);
      this.authNext = undefined;
      this.count('unknown', false);
      await this.respond(reply(550, '5.5.2', `${this.s.myhostname} Error: bare <LF> received`));
      return;
    }
    if (info.bareLf && this.s.forbidBareNewline === 'note') this.log.info(`bare <LF> received after ${this.lastCommand} from ${this.client}`);
    if (this.authNext) {
      const cont = this.authNext;
      this.authNext = undefined;
      await cont(lineBuf.toString('latin1'));
      return;
    }
    if (lineBuf.includes(0)) {
      this.count('unknown', false);
      await this.respond(R.badSyntax);
      return;
    }
    // Postfix: with smtputf8_enable, a command that is not valid UTF-8 is refused before parsing
    // (otherwise the bytes would become U+FFFD and reach the envelope).
    if (this.s.smtputf8 && !isUtf8(lineBuf)) {
      this.count('unknown', false);
      await this.respond(R.badUtf8);
      return;
    }
    if (info.tooLong) {
      this.count('unknown', false);
      await this.respond(R.tooLong);
      return;
    }
    const line = lineBuf.toString('utf8').replace(/^\s+/, '');
    const sp = line.search(/\s/);
    const name = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
    const arg = sp < 0 ? '' : line.slice(sp + 1).trim();
    const cmd = Object.prototype.hasOwnProperty.call(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!cmd) {
      this.lastCommand = 'UNKNOWN';
      this.count('unknown', false);
      await this.respond(R.unknown);
      return;
    }
    // RFC 2920 / Postfix smtpd_forbid_unauth_pipelining: a command that must end a pipelined
    // group, or any command from a client that was not offered PIPELINING, followed by more input.
    if (name !== 'QUIT' && info.pending() && (cmd.last || !this.esmtp)) {
      this.illegalPipelining = true;
      if (this.s.forbidUnauthPipelining) {
        slog.logPipelining(this.log, name, this.client, info.pendingText().replace(/[\r\n]+/g, ' ').trim());
        this.lastCommand = name;
        this.count(name.toLowerCase(), false);
        this.ended = true;
        await this.respond(R.sync);
        this.close();
        return;
      }
    }
    this.lastCommand = name;
    if (cmd.junk && ++this.junkCount > this.s.junkCommandLimit) this.errorCount++;
    const ok = await cmd.handler.call(this, arg, line);
    // DATA is counted when the message is in (or refused); AUTH when its exchange ends.
    if (ok !== null && (name !== 'DATA' || !ok)) this.count(name.toLowerCase(), ok);
  }

  // --- transaction state ----------------------------------------------------------------

  private resetTransaction(): void {
    this.sender = undefined;
    this.mailParams = {};
    this.rcpts = [];
    this.prepend = [];
    this.holdText = undefined;
    this.discardText = undefined;
  }

  private inTransaction(): boolean {
    return this.sender !== undefined;
  }

  private envelopeProtocol(): Envelope['client']['protocol'] {
    if (!this.esmtp) return 'SMTP';
    return `ESMTP${this.secure ? 'S' : ''}${this.saslUser ? 'A' : ''}` as Envelope['client']['protocol'];
  }

  // --- command handlers -------------------------------------------------------------------

  async ehlo(arg: string, esmtp: boolean): Promise<boolean> {
    if (!arg) {
      await this.respond(reply(501, '', `Syntax: ${esmtp ? 'EHLO' : 'HELO'} hostname`));
      return false;
    }
    this.resetTransaction();
    const helo = arg.split(/\s+/)[0];
    const v = await this.check('helo', { helo, protocol: esmtp ? 'ESMTP' : 'SMTP' });
    if (!(await this.applyVerdict(v, esmtp ? 'EHLO' : 'HELO'))) return false;
    this.helo = helo;
    this.esmtp = esmtp;
    this.afterStarttls = false;
    if (!esmtp) {
      await this.respond(reply(250, '', this.s.myhostname));
      return true;
    }
    const kw: string[] = ['PIPELINING'];
    kw.push(this.s.messageSizeLimit > 0 ? `SIZE ${this.s.messageSizeLimit}` : 'SIZE');
    if (!this.s.disableVrfy) kw.push('VRFY');
    kw.push('ETRN');
    if (this.s.tls.level !== 'none' && !this.secure) kw.push('STARTTLS');
    const mechs = await this.authMechanisms();
    if (mechs.length) kw.push(`AUTH ${mechs.join(' ')}`);
    kw.push('ENHANCEDSTATUSCODES', '8BITMIME', 'DSN');
    if (this.s.smtputf8) kw.push('SMTPUTF8');
    const lines = [this.s.myhostname, ...kw.filter((k) => !this.s.discardEhloKeywords.has(k.split(' ')[0]))];
    await this.respond({ code: 250, lines });
    return true;
  }

  /** AUTH is offered when enabled, not yet used, and (under smtpd_tls_auth_only) only with TLS. */
  private authAllowed(): boolean {
    return !!this.ctx.sasl && this.s.sasl.enabled && !this.saslUser && (this.secure || !this.s.tls.authOnly);
  }

  private async authMechanisms(): Promise<string[]> {
    if (!this.authAllowed() || !this.ctx.sasl) return [];
    try {
      const mechs = await this.ctx.sasl.mechanisms();
      // smtpd_sasl_security_options = noanonymous (Postfix's default).
      return mechs.filter((m) => !m.flags.includes('anonymous')).map((m) => m.name);
    } catch (err) {
      this.log.warning(`SASL: cannot get the mechanism list: ${(err as Error).message}`);
      return [];
    }
  }

  async mail(arg: string): Promise<boolean> {
    if ((this.s.heloRequired && !this.helo) || (this.afterStarttls && !this.helo)) {
      await this.respond(R.needHelo);
      return false;
    }
    if (this.s.tls.level === 'encrypt' && !this.secure) {
      await this.respond(R.starttlsFirst);
      return false;
    }
    if (this.inTransaction()) {
      await this.respond(R.nested);
      return false;
    }
    const parts = splitAddressArg(arg, 'FROM');
    if (!parts) {
      await this.respond(reply(501, '5.5.4', 'Syntax: MAIL FROM:<address>'));
      return false;
    }
    if (!addressSyntaxOk(parts.address)) {
      await this.respond(reply(501, '5.1.7', 'Bad sender address syntax'));
      return false;
    }
    const p = mailParams(parseParams(parts.rest), { smtputf8: this.s.smtputf8 });
    if ('code' in p) {
      await this.respond(p);
      return false;
    }
    if (this.s.smtputf8 && !p.smtputf8 && /[^\x00-\x7f]/.test(parts.address)) {
      await this.respond(R.declareSmtputf8);
      return false;
    }
    if (p.size !== undefined && this.s.messageSizeLimit > 0 && p.size > this.s.messageSizeLimit) {
      await this.respond(R.sizeLimit);
      return false;
    }
    if (this.connectVerdict && !(await this.applyVerdict(this.connectVerdict, 'CONNECT'))) return false;
    const v = await this.check('mail', { sender: parts.address, size: p.size });
    if (v.action === 'reject') {
      slog.logReject(this.log, { ...this.rejectCtx('MAIL'), sender: parts.address }, v.reply as Reply);
      await this.respond(v.reply as Reply);
      return false;
    }
    for (const w of v.warnings ?? []) slog.logWarn(this.log, { ...this.rejectCtx('MAIL'), sender: parts.address }, w);
    this.sender = stripTrailingDot(parts.address);
    this.mailParams = p;
    this.rcpts = [];
    this.prepend = [...(v.prepend ?? [])];
    await this.respond(reply(250, '2.1.0', 'Ok'));
    return true;
  }

  async rcpt(arg: string): Promise<boolean> {
    if (!this.inTransaction()) {
      await this.respond(R.needMail);
      return false;
    }
    const parts = splitAddressArg(arg, 'TO');
    if (!parts) {
      await this.respond(reply(501, '5.5.4', 'Syntax: RCPT TO:<address>'));
      return false;
    }
    if (!parts.address || !addressSyntaxOk(parts.address)) {
      await this.respond(reply(501, '5.1.3', 'Bad recipient address syntax'));
      return false;
    }
    if (this.s.smtputf8 && !this.mailParams.smtputf8 && /[^\x00-\x7f]/.test(parts.address)) {
      await this.respond(R.declareSmtputf8);
      return false;
    }
    const p = rcptParams(parseParams(parts.rest));
    if ('code' in p) {
      await this.respond(p);
      return false;
    }
    if (this.rcpts.length >= this.s.recipientLimit) {
      await this.respond(R.tooManyRcpts);
      return false;
    }
    const v = await this.check('rcpt', { recipient: parts.address, recipientCount: this.rcpts.length });
    if (!(await this.applyVerdict(v, 'RCPT', parts.address))) return false;
    this.rcpts.push({ address: stripTrailingDot(parts.address), ...(p.notify ? { notify: p.notify } : {}), ...(p.orcpt ? { orcpt: p.orcpt } : {}) });
    if (v.prepend) this.prepend.push(...v.prepend);
    await this.respond(reply(250, '2.1.5', 'Ok'));
    return true;
  }

  async rset(arg: string): Promise<boolean> {
    if (arg) {
      await this.respond(reply(501, '5.5.4', 'Syntax: RSET'));
      return false;
    }
    this.resetTransaction();
    await this.respond(R.ok);
    return true;
  }

  async noop(): Promise<boolean> {
    await this.respond(R.ok);
    return true;
  }

  async quit(): Promise<boolean> {
    this.ended = true;
    await this.respond(R.bye);
    this.close();
    return true;
  }

  async vrfy(arg: string): Promise<boolean> {
    if (this.s.disableVrfy) {
      await this.respond(reply(502, '5.5.1', 'VRFY command is disabled'));
      return false;
    }
    if (!arg) {
      await this.respond(reply(501, '5.5.4', 'Syntax: VRFY address'));
      return false;
    }
    await this.respond(reply(252, '2.0.0', arg));
    return true;
  }

  async etrn(arg: string): Promise<boolean> {
    if (this.s.heloRequired && !this.helo) {
      await this.respond(reply(503, '', 'Error: send HELO/EHLO first'));
      return false;
    }
    if (this.inTransaction()) {
      await this.respond(reply(503, '', 'Error: MAIL transaction in progress'));
      return false;
    }
    if (!arg || /\s/.test(arg)) {
      await this.respond(reply(500, '', 'Syntax: ETRN domain'));
      return false;
    }
    const domain = arg.replace(/^[@#]/, '');
    if (!validHostname(domain)) {
      await this.respond(reply(501, '', 'Error: invalid parameter syntax'));
      return false;
    }
    if (this.connectVerdict && !(await this.applyVerdict(this.connectVerdict, 'CONNECT'))) return false;
    const v = await this.check('etrn', { etrnDomain: domain });
    if (!(await this.applyVerdict(v, 'ETRN'))) return false;
    let ok = false;
    if (this.ctx.flusher) {
      try {
        ok = await this.ctx.flusher.flushDomain(domain);
      } catch (err) {
        this.log.warning(`ETRN ${domain} from ${this.client}: ${(err as Error).message}`);
      }
    }
    await this.respond(ok ? reply(250, '', 'Queuing started') : reply(458, '', 'Unable to queue messages'));
    return ok;
  }

  async starttls(arg: string): Promise<boolean> {
    if (this.secure) {
      await this.respond(reply(554, '5.5.1', 'Error: TLS already active'));
      return false;
    }
    if (this.s.tls.level === 'none') {
      await this.respond(reply(502, '5.5.1', 'Error: command not implemented'));
      return false;
    }
    if (arg) {
      await this.respond(reply(501, '5.5.4', 'Syntax: STARTTLS'));
      return false;
    }
    await this.respond(reply(220, '2.0.0', 'Ready to start TLS'));
    // RFC 3207 4.2: forget everything learned before the handshake; a new EHLO is required.
    this.helo = undefined;
    this.esmtp = false;
    this.saslUser = this.saslMethod = undefined;
    this.resetTransaction();
    this.afterStarttls = true;
    await new Promise<void>((resolve) => this.upgrade(() => resolve()));
    return true;
  }

  async auth(arg: string): Promise<boolean | null> {
    if (!this.ctx.sasl || !this.s.sasl.enabled) {
      await this.respond(reply(503, '5.5.1', 'Error: authentication not enabled'));
      return false;
    }
    if (!this.secure && this.s.tls.authOnly) {
      await this.respond(reply(538, '5.7.11', 'Encryption required for requested authentication mechanism'));
      return false;
    }
    if (!this.helo) {
      await this.respond(R.needHelo);
      return false;
    }
    if (this.saslUser) {
      await this.respond(reply(503, '5.5.1', 'Error: already authenticated'));
      return false;
    }
    if (this.inTransaction()) {
      await this.respond(reply(503, '5.5.1', 'Error: MAIL transaction in progress'));
      return false;
    }
    const [mechArg, initialArg, ...extra] = arg.split(/\s+/).filter(Boolean);
    if (!mechArg || extra.length) {
      await this.respond(reply(501, '5.5.4', 'Syntax: AUTH mechanism'));
      return false;
    }
    const mech = mechArg.toUpperCase();
    const mechs = await this.authMechanisms();
    if (!mechs.includes(mech)) {
      await this.respond(reply(535, '5.7.8', 'Error: authentication failed: Invalid authentication mechanism'));
      return false;
    }
    let initial: string | undefined;
    if (initialArg !== undefined) {
      if (initialArg === '=') initial = '';
      else if (!isBase64(initialArg)) {
        await this.respond(reply(501, '5.5.2', 'Cannot decode response'));
        return false;
      } else initial = initialArg;
    }
    const step = await (this.ctx.sasl as DovecotAuthClient).start(mech, initial, {
      localIp: this.localAddress,
      remoteIp: this.remoteAddress,
      localPort: this.localPort,
      remotePort: this.remotePort,
      secured: this.secure,
    });
    return this.authStep(mech, step);
  }

  private async authStep(mech: string, step: AuthStep): Promise<boolean | null> {
    if (step.kind === 'ok') {
      this.saslUser = step.user;
      this.saslMethod = mech;
      await this.respond(reply(235, '2.7.0', 'Authentication successful'));
      return true;
    }
    if (step.kind === 'fail') {
      const reason = step.reason || 'authentication failure';
      this.log.warning(`${this.client}: SASL ${mech} authentication failed: ${reason}`);
      await this.respond(
        step.temporary
          ? reply(454, '4.7.0', 'Temporary authentication failure: ' + reason)
          : reply(535, '5.7.8', 'Error: authentication failed: ' + reason),
      );
      return false;
    }
    const id = step.id;
    // The challenge goes to the client; its answer (the next line) continues the exchange.
    this.authNext = async (line: string) => {
      const resp = line.trim();
      if (resp === '*') {
        this.count('auth', false);
        await this.respond(reply(501, '5.7.0', 'Authentication aborted'));
        return;
      }
      if (!isBase64(resp)) {
        this.count('auth', false);
        await this.respond(reply(501, '5.5.2', 'Cannot decode response'));
        return;
      }
      const next = await (this.ctx.sasl as DovecotAuthClient).continue(id, resp);
      const ok = await this.authStep(mech, next);
      if (ok !== null) this.count('auth', ok);
    };
    await this.respond({ code: 334, lines: [step.challenge] });
    return null;
  }

  async data(arg: string): Promise<boolean> {
    if (arg) {
      await this.respond(reply(501, '5.5.4', 'Syntax: DATA'));
      return false;
    }
    if (!this.inTransaction()) {
      await this.respond(R.needMail);
      return false;
    }
    if (!this.rcpts.length) {
      await this.respond(R.needRcpt);
      return false;
    }
    const v = await this.check('data');
    if (!(await this.applyVerdict(v, 'DATA', this.rcpts[this.rcpts.length - 1].address))) return false;
    const parser = this._parser;
    if (!parser) return false;

    const queueId = this.ctx.queue.newId?.();
    if (queueId) slog.logClientLine(this.log, queueId, this.client, this.saslUser ? { method: this.saslMethod as string, username: this.saslUser } : undefined);
    const arrival = new Date();
    const envelope: Envelope = {
      sender: this.sender as string,
      recipients: this.rcpts.map((r) => ({ ...r })),
      ...(this.mailParams.ret ? { ret: this.mailParams.ret } : {}),
      ...(this.mailParams.envid ? { envid: this.mailParams.envid } : {}),
      ...(this.mailParams.body ? { body: this.mailParams.body } : {}),
      ...(this.mailParams.smtputf8 ? { smtputf8: true } : {}),
      client: {
        name: this.clientName,
        address: this.remoteAddress,
        helo: this.helo ?? '',
        protocol: this.envelopeProtocol(),
        ...(this.saslUser ? { saslUsername: this.saslUser } : {}),
      },
      arrivalTime: arrival.getTime(),
    };
    const content = new PassThrough();
    // The sink may not be reading yet when smtpd aborts the content; it sees the error when it does.
    content.on('error', () => undefined);
    const header =
      this.prepend.map((h) => h + '\r\n').join('') +
      receivedHeader({
        helo: this.helo,
        clientName: this.clientName,
        clientAddress: this.remoteAddress,
        myhostname: this.s.myhostname,
        mailName: this.s.mailName,
        protocol: envelope.client.protocol,
        queueId,
        recipients: this.rcpts.map((r) => r.address),
        date: arrival,
      });
    content.write(header);
    let sinkError: SmtpError | undefined;
    const acceptOpts: AcceptOptions = { ...(queueId ? { queueId } : {}) };
    this.acceptOpts = acceptOpts;
    const accepted = this.ctx.queue.accept(envelope, content, acceptOpts).catch((err: unknown) => {
      sinkError = toSmtpError(err);
      throw sinkError;
    });
    accepted.catch(() => undefined);

    const norm = new LineEndingNormalizer();
    const limit = this.s.messageSizeLimit;
    let size = Buffer.byteLength(header);
    let oversized = false;
    const stream = parser.startDataMode();
    this._dataStream = stream;
    this.inData = true;
    this.dataBytes = 0;
    this._handlerPending = false;
    stream.on('data', (chunk: Buffer) => {
      this.dataBytes += chunk.length;
      if (chunk.includes(0x0a)) this.armDeadline();
      if (oversized || sinkError) return;
      const out = norm.push(chunk);
      size += out.length;
      if (limit > 0 && size > limit) {
        oversized = true;
        content.destroy(new SmtpError(R.sizeLimit));
        return;
      }
      if (!content.write(out)) {
        stream.pause();
        content.once('drain', () => stream.resume());
      }
    });
    const aborted = new SmtpError(reply(451, '4.3.0', 'Error: lost connection'));
    stream.on('error', () => content.destroy(aborted));
    stream.on('close', () => {
      if (!stream.readableEnded) content.destroy(aborted);
    });
    stream.on('end', () => {
      this._handlerPending = true;
      void this.endOfData({ norm, content, accepted, queueId, oversized: () => oversized, size: () => size }).finally(() => {
        this.inData = false;
        this._handlerPending = false;
        this._dataStream = false;
        this.resetTransaction();
        if (this._parser) this._parser.continue();
      });
    });
    await this.respond(reply(354, '', 'End data with <CR><LF>.<CR><LF>'));
    // The client owes us the message now: the idle timeout counts again.
    this._handlerPending = false;
    return true;
  }

  private async endOfData(d: {
    norm: LineEndingNormalizer;
    content: PassThrough;
    accepted: Promise<string>;
    queueId?: string;
    oversized: () => boolean;
    size: () => number;
  }): Promise<void> {
    const stage = 'END-OF-MESSAGE';
    const fail = async (r: Reply, log = true) => {
      if (!d.content.destroyed) d.content.destroy(new SmtpError(r));
      await d.accepted.catch(() => undefined);
      if (log) slog.logReject(this.log, { ...this.rejectCtx(stage, this.rcpts[this.rcpts.length - 1]?.address), queueId: d.queueId }, r);
      this.count('data', false);
      await this.respond(r);
    };
    if (d.oversized()) return fail(R.sizeLimit);
    const tail = d.norm.end();
    if (d.norm.bareLf && this.s.forbidBareNewline === 'reject' && !this.bareLfExempt) {
      this.log.info(`bare <LF> received after DATA from ${this.client}`);
      return fail(reply(550, '5.5.2', `${this.s.myhostname} Error: bare <LF> received`), false);
    }
    if (d.norm.bareLf && this.s.forbidBareNewline === 'note') this.log.info(`bare <LF> received after DATA from ${this.client}`);
    const v = await this.check('end-of-data', { size: d.size(), queueId: d.queueId });
    if (v.action === 'reject') return fail(v.reply as Reply);
    await this.applyVerdict(v, stage);
    if (this.discardText !== undefined) this.acceptOpts.discard = true;
    else if (this.holdText !== undefined) this.acceptOpts.queue = 'hold';
    try {
      if (!d.content.destroyed) d.content.end(tail);
      const id = await d.accepted;
      if (!d.queueId) slog.logClientLine(this.log, id, this.client, this.saslUser ? { method: this.saslMethod as string, username: this.saslUser } : undefined);
      this.count('data', true);
      this.errorCount = 0;
      await this.respond(reply(250, '2.0.0', `Ok: queued as ${id}`));
    } catch (err) {
      const e = toSmtpError(err);
      this.log.warning(`${this.client}: queue file write error: ${e.causeText ?? e.message}`);
      this.count('data', false);
      await this.respond(e.reply);
    }
  }
}

/**
 * `user@domain.` → `user@domain`, as Postfix's address rewriting does before the queue: the
 * restrictions already treat both alike, and a strict primary would refuse the dotted form.
 */
function stripTrailingDot(address: string): string {
  return /@[^@]*[^.]\.$/.test(address) ? address.slice(0, -1) : address;
}

function isBase64(s: string): boolean {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve(undefined), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** Postfix's smtpd_cmd_table: command → handler and flags. */
const COMMANDS: Record<string, CommandDef> = {
  HELO: { handler: function (a) { return this.ehlo(a, false); }, last: true, junk: false },
  EHLO: { handler: function (a) { return this.ehlo(a, true); }, last: true, junk: false },
  STARTTLS: { handler: function (a) { return this.starttls(a); }, last: true, junk: false },
  AUTH: { handler: function (a) { return this.auth(a); }, last: true, junk: false },
  MAIL: { handler: function (a) { return this.mail(a); }, last: false, junk: false },
  RCPT: { handler: function (a) { return this.rcpt(a); }, last: false, junk: false },
  DATA: { handler: function (a) { return this.data(a); }, last: true, junk: false },
  RSET: { handler: function (a) { return this.rset(a); }, last: false, junk: true },
  NOOP: { handler: function () { return this.noop(); }, last: true, junk: true },
  VRFY: { handler: function (a) { return this.vrfy(a); }, last: true, junk: true },
  ETRN: { handler: function (a) { return this.etrn(a); }, last: true, junk: true },
  QUIT: { handler: function () { return this.quit(); }, last: true, junk: false },
};

/** smtp-server's server with one change: its connections are BackstopConnections. */
export class BackstopServer extends SMTPServer {
  constructor(
    options: ConstructorParameters<typeof SMTPServer>[0],
    private readonly context: () => SessionContext,
  ) {
    super(options);
  }

  override connect(socket: net.Socket, socketOptions: object): void {
    const self = this as unknown as { connections: Set<SMTPConnection>; _onError(err: Error): void };
    const connection = new BackstopConnection(this, socket, socketOptions, this.context());
    self.connections.add(connection);
    connection.on('error', (err: Error) => self._onError(err));
    connection.init();
  }
}
