// One message coming in, for DATA and BDAT alike: the queue transaction begun with the session's
// envelope (its id names the message in the Received: header), the content streamed into it
// through the line-ending normalizer (bare CR/LF → CRLF, no smuggling) behind the PREPEND
// headers and the Received: header, and Postfix's size accounting (act_size: each line's length
// plus 2, whatever its line end) against message_size_limit. finish() runs the end-of-message
// rules (bare <LF>, end-of-data restrictions) and commits — into hold/ for HOLD — or aborts.
// Trusts the transaction: commit resolves only when the message is durable.

import { PassThrough } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { cipherBits, reply, toSmtpError, SmtpError, type Reply, type Envelope } from '../mail/index.js';
import type { BackstopConnection } from './connection.js';
import { check, applyVerdict } from './verdict.js';
import type { MessageTransaction } from './types.js';
import { LineEndingNormalizer, receivedHeader } from './body.js';
import { R } from './replies.js';
import * as slog from './log.js';
import { smtpdAccepted } from '../observe/index.js';

/** Protocol and cipher of a session after STARTTLS, for the Received: header. */
function tlsOf(c: BackstopConnection): { protocol: string; cipher: string; bits?: number } | undefined {
  const sock = c._socket as Partial<TLSSocket> | undefined;
  if (!c.secure || !sock?.getCipher) return undefined;
  const cipher = sock.getCipher();
  const name = cipher.standardName ?? cipher.name;
  return { protocol: sock.getProtocol?.() ?? cipher.version, cipher: name, bits: cipherBits(name) };
}

const LF = 0x0a;
const CR = 0x0d;

export class MessageIn {
  /** Postfix's act_size: the client's content, each line counted with a two-byte line end. */
  size = 0;
  oversized = false;
  sinkError?: SmtpError;
  private readonly norm = new LineEndingNormalizer();
  private prevCr = false;
  private lastByte = LF;

  private constructor(
    private readonly c: BackstopConnection,
    readonly tx: MessageTransaction,
    readonly content: PassThrough,
    private readonly written: Promise<void>,
  ) {}

  get id(): string {
    return this.tx.id;
  }

  /** Begins the queue transaction; on failure answers the client and returns undefined. */
  static async open(c: BackstopConnection): Promise<MessageIn | undefined> {
    const { settings: s, state: st } = c;
    const arrival = new Date();
    const envelope: Envelope = {
      sender: st.sender as string,
      recipients: st.rcpts.map((r) => ({ ...r })),
      ...(st.mailParams.ret ? { ret: st.mailParams.ret } : {}),
      ...(st.mailParams.envid ? { envid: st.mailParams.envid } : {}),
      ...(st.mailParams.body ? { body: st.mailParams.body } : {}),
      ...(st.mailParams.smtputf8 ? { smtputf8: true } : {}),
      client: {
        name: st.clientName,
        address: c.remoteAddress,
        helo: st.helo ?? '',
        protocol: st.envelopeProtocol(),
        ...(st.saslUser ? { saslUsername: st.saslUser } : {}),
      },
      arrivalTime: arrival.getTime(),
    };
    let tx: MessageTransaction;
    try {
      tx = c.ctx.queue.begin(envelope);
    } catch (err) {
      const e = toSmtpError(err);
      c.log.warning(`${st.client}: queue file write error: ${e.causeText ?? e.message}`);
      await c.respond(e.reply);
      return undefined;
    }
    slog.logClientLine(c.log, tx.id, st.client, st.saslLogin());
    const content = new PassThrough();
    // The sink may not be reading yet when smtpd aborts the content; it sees the error when it does.
    content.on('error', () => undefined);
    content.write(
      st.prepend.map((h) => h + '\r\n').join('') +
        receivedHeader({
          helo: st.helo,
          clientName: st.clientName,
          clientAddress: c.remoteAddress,
          myhostname: s.myhostname,
          mailName: s.mailName,
          protocol: envelope.client.protocol,
          queueId: tx.id,
          recipients: st.rcpts.map((r) => r.address),
          date: arrival,
          tls: s.tls.receivedHeader ? tlsOf(c) : undefined,
        }),
    );
    let msg: MessageIn | undefined;
    // A failed write (size, disk, a client gone mid-message) keeps nothing: abort at once.
    const written = tx.write(content).catch(async (err: unknown) => {
      if (msg) msg.sinkError = toSmtpError(err);
      await tx.abort();
      throw err;
    });
    written.catch(() => undefined);
    msg = new MessageIn(c, tx, content, written);
    return msg;
  }

  /**
   * Takes some content. Returns false when the caller should pause until 'drain'. Past
   * message_size_limit the content is dropped and the warning logged, as Postfix does; the
   * refusal comes at the end of the message.
   */
  push(chunk: Buffer): boolean {
    if (this.oversized || this.sinkError) return true;
    this.count(chunk);
    const limit = this.c.settings.messageSizeLimit;
    if (limit > 0 && this.size > limit) {
      this.oversized = true;
      this.c.log.warning(`${this.id}: queue file size limit exceeded`);
      this.content.destroy(new SmtpError(R.fileTooBig));
      return true;
    }
    return this.content.write(this.norm.push(chunk));
  }

  private count(chunk: Buffer): void {
    this.size += chunk.length;
    for (const b of chunk) {
      if (b === LF && !this.prevCr) this.size++;
      this.prevCr = b === CR;
    }
    if (chunk.length) this.lastByte = chunk[chunk.length - 1];
  }

  /** BDAT LAST: a last line without its line end still is a line (Postfix's record). */
  terminateLastLine(): void {
    if (this.lastByte !== LF && !this.oversized) this.push(Buffer.from('\r\n'));
  }

  /** The client is gone or the transaction ends without a message: keep nothing. */
  async abort(cause?: Reply): Promise<void> {
    if (!this.content.destroyed) this.content.destroy(new SmtpError(cause ?? reply(451, '4.3.0', 'Error: lost connection')));
    await this.written.catch(() => undefined);
    await this.tx.abort();
  }

  /**
   * End of the message: the bare-<LF> rule, the end-of-data restrictions, then commit and the
   * reply — `250 2.0.0 Ok: queued as ID` (DATA) or `250 2.0.0 Ok: N bytes queued as ID` (BDAT).
   * Returns whether the message was taken.
   */
  async finish(kind: 'data' | 'bdat'): Promise<boolean> {
    const c = this.c;
    const { settings: s, state: st } = c;
    const stage = 'END-OF-MESSAGE';
    const fail = async (r: Reply, log = true): Promise<boolean> => {
      await this.abort(r);
      if (log) slog.logReject(c.log, { ...st.rejectCtx(stage, st.lastRecipient()), queueId: this.id }, r);
      await c.respond(r);
      return false;
    };
    if (this.oversized) return fail(R.fileTooBig, false);
    if (this.sinkError) {
      c.log.warning(`${st.client}: queue file write error: ${this.sinkError.causeText ?? this.sinkError.message}`);
      return fail(this.sinkError.reply, false);
    }
    const tail = this.norm.end();
    if (this.norm.bareLf && s.forbidBareNewline === 'reject' && !c.bareLfExempt) {
      slog.logRejectText(c.log, { ...st.rejectCtx(stage, st.lastRecipient()), queueId: this.id }, 'bare <LF> received');
      return fail(reply(550, '5.5.2', `${s.myhostname} Error: bare <LF> received`), false);
    }
    if (this.norm.bareLf && s.forbidBareNewline === 'note') c.log.info(`bare <LF> received after ${kind.toUpperCase()} from ${st.client}`);
    const v = await check(c, 'end-of-data', { size: this.size, queueId: this.id });
    if (v.action === 'reject') return fail(v.reply as Reply);
    await applyVerdict(c, v, stage);
    try {
      if (!this.content.destroyed) this.content.end(tail);
      await this.written;
      let id = this.id;
      // DISCARD: the content was read and checked; keep nothing and claim success, as Postfix does.
      if (st.discardText !== undefined) await this.tx.abort();
      else id = await this.tx.commit(st.holdText !== undefined ? { queue: 'hold' } : {});
      c.errorCount = 0;
      c.junkCount = 0;
      smtpdAccepted.inc();
      await c.respond(reply(250, '2.0.0', kind === 'bdat' ? `Ok: ${this.size} bytes queued as ${id}` : `Ok: queued as ${id}`));
      return true;
    } catch (err) {
      await this.tx.abort();
      const e = toSmtpError(err);
      c.log.warning(`${st.client}: queue file write error: ${e.causeText ?? e.message}`);
      await c.respond(e.reply);
      return false;
    }
  }
}
