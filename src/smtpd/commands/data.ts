// DATA and the end of the message: the queue hand-off in one place. After the data restrictions,
// smtpd begins a queue transaction (its id names the message in the Received: header) and the
// message streams into it through the line-ending normalizer (bare CR/LF → CRLF, no smuggling)
// behind the Received: header and the PREPEND headers, counted against message_size_limit. At the
// end: the bare-<LF> rule, the end-of-data restrictions, then commit — into hold/ for HOLD — or
// abort for DISCARD and every refusal; `250 Ok: queued as ID` only once commit says the message
// is on disk. Trusts the transaction: commit resolves only when the message is durable.

import { PassThrough } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { cipherBits, reply, toSmtpError, SmtpError, type Reply, type Envelope } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import { check, applyVerdict } from '../verdict.js';
import type { MessageTransaction } from '../types.js';
import { LineEndingNormalizer, receivedHeader } from '../body.js';
import { R } from '../replies.js';
import * as slog from '../log.js';
import { smtpdAccepted } from '../../observe/index.js';

/** Protocol and cipher of a session after STARTTLS, for the Received: header. */
function tlsOf(c: BackstopConnection): { protocol: string; cipher: string; bits?: number } | undefined {
  const sock = c._socket as Partial<TLSSocket> | undefined;
  if (!c.secure || !sock?.getCipher) return undefined;
  const cipher = sock.getCipher();
  const name = cipher.standardName ?? cipher.name;
  return { protocol: sock.getProtocol?.() ?? cipher.version, cipher: name, bits: cipherBits(name) };
}

export async function data(c: BackstopConnection, arg: string): Promise<boolean> {
  const { settings: s, state: st } = c;
  if (arg) {
    await c.respond(reply(501, '5.5.4', 'Syntax: DATA'));
    return false;
  }
  if (!st.inTransaction()) {
    await c.respond(R.needMail);
    return false;
  }
  if (!st.rcpts.length) {
    await c.respond(R.needRcpt);
    return false;
  }
  const v = await check(c, 'data');
  if (!(await applyVerdict(c, v, 'DATA', st.lastRecipient()))) return false;
  const parser = c._parser;
  if (!parser) return false;

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
    return false;
  }
  const queueId = tx.id;
  slog.logClientLine(c.log, queueId, st.client, st.saslLogin());
  const content = new PassThrough();
  // The sink may not be reading yet when smtpd aborts the content; it sees the error when it does.
  content.on('error', () => undefined);
  const header =
    st.prepend.map((h) => h + '\r\n').join('') +
    receivedHeader({
      helo: st.helo,
      clientName: st.clientName,
      clientAddress: c.remoteAddress,
      myhostname: s.myhostname,
      mailName: s.mailName,
      protocol: envelope.client.protocol,
      queueId,
      recipients: st.rcpts.map((r) => r.address),
      date: arrival,
      tls: s.tls.receivedHeader ? tlsOf(c) : undefined,
    });
  content.write(header);
  let sinkError: SmtpError | undefined;
  // A failed write (size, disk, a client gone mid-message) keeps nothing: abort at once.
  const written = tx.write(content).catch(async (err: unknown) => {
    sinkError = toSmtpError(err);
    await tx.abort();
    throw sinkError;
  });
  written.catch(() => undefined);

  const norm = new LineEndingNormalizer();
  const limit = s.messageSizeLimit;
  let size = Buffer.byteLength(header);
  let oversized = false;
  const stream = parser.startDataMode();
  c._dataStream = stream;
  c.inData = true;
  c.dataBytes = 0;
  c._handlerPending = false;
  stream.on('data', (chunk: Buffer) => {
    c.dataBytes += chunk.length;
    if (chunk.includes(0x0a)) c.armDeadline();
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
  // Made only when needed: an Error captures a stack trace, a cost every message would pay.
  const aborted = () => new SmtpError(reply(451, '4.3.0', 'Error: lost connection'));
  stream.on('error', () => content.destroy(aborted()));
  stream.on('close', () => {
    if (!stream.readableEnded) content.destroy(aborted());
  });
  stream.on('end', () => {
    c._handlerPending = true;
    void endOfData(c, { norm, content, tx, written, oversized: () => oversized, size: () => size }).finally(() => {
      c.inData = false;
      c._handlerPending = false;
      c._dataStream = false;
      st.resetTransaction();
      if (c._parser) c._parser.continue();
    });
  });
  await c.respond(reply(354, '', 'End data with <CR><LF>.<CR><LF>'));
  // The client owes us the message now: the idle timeout counts again.
  c._handlerPending = false;
  return true;
}

interface DataInProgress {
  norm: LineEndingNormalizer;
  content: PassThrough;
  tx: MessageTransaction;
  written: Promise<void>;
  oversized: () => boolean;
  size: () => number;
}

async function endOfData(c: BackstopConnection, d: DataInProgress): Promise<void> {
  const { settings: s, state: st } = c;
  const stage = 'END-OF-MESSAGE';
  const fail = async (r: Reply, log = true) => {
    if (!d.content.destroyed) d.content.destroy(new SmtpError(r));
    await d.written.catch(() => undefined);
    await d.tx.abort();
    if (log) slog.logReject(c.log, { ...st.rejectCtx(stage, st.lastRecipient()), queueId: d.tx.id }, r);
    c.count('data', false);
    await c.respond(r);
  };
  if (d.oversized()) return fail(R.sizeLimit);
  const tail = d.norm.end();
  if (d.norm.bareLf && s.forbidBareNewline === 'reject' && !c.bareLfExempt) {
    c.log.info(`bare <LF> received after DATA from ${st.client}`);
    return fail(reply(550, '5.5.2', `${s.myhostname} Error: bare <LF> received`), false);
  }
  if (d.norm.bareLf && s.forbidBareNewline === 'note') c.log.info(`bare <LF> received after DATA from ${st.client}`);
  const v = await check(c, 'end-of-data', { size: d.size(), queueId: d.tx.id });
  if (v.action === 'reject') return fail(v.reply as Reply);
  await applyVerdict(c, v, stage);
  try {
    if (!d.content.destroyed) d.content.end(tail);
    await d.written;
    let id = d.tx.id;
    // DISCARD: the content was read and checked; keep nothing and claim success, as Postfix does.
    if (st.discardText !== undefined) await d.tx.abort();
    else id = await d.tx.commit(st.holdText !== undefined ? { queue: 'hold' } : {});
    c.count('data', true);
    c.errorCount = 0;
    smtpdAccepted.inc();
    await c.respond(reply(250, '2.0.0', `Ok: queued as ${id}`));
  } catch (err) {
    await d.tx.abort();
    const e = toSmtpError(err);
    c.log.warning(`${st.client}: queue file write error: ${e.causeText ?? e.message}`);
    c.count('data', false);
    await c.respond(e.reply);
  }
}
