// One mail transaction on an open session: MAIL FROM with the parameters the peer supports
// (SIZE, BODY, RET, ENVID, SMTPUTF8), one RCPT TO per recipient (NOTIFY, ORCPT), DATA and the
// content — pipelined in one write when the peer announces PIPELINING (RFC 2920), one command at
// a time otherwise — and one outcome per recipient. Without a body it stops after RCPT (address
// probes). Trusts the handshake's features; the content goes through DataEncoder, so the peer sees
// exactly one message with CRLF line endings.

import type { DsnNotify } from '../mail/index.js';
import { DotEncoder } from './body.js';
import { xtext } from './xforward.js';
import { SessionError, type Conn } from './conn.js';
import type { Features } from './handshake.js';
import type { ServerReply } from './replies.js';

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
  /** The content (CRLF or not; it is normalized); a Readable will do. Absent: probe mode, no DATA. */
  body?: () => AsyncIterable<Buffer | string>;
}

/**
 * The session is to be reused after the transaction: with PIPELINING, RSET goes out with the end
 * of the content (RFC 2920 lets RSET appear anywhere in a group; Postfix's smtp does the same),
 * saving a round trip per message. Apart from the Transaction, which the session does not copy
 * (a copy with these added cost a new object shape per message in a drain's profile).
 */
export interface Reuse {
  /** The pipelined RSET's reply; never fails the transaction. */
  onReset: (ok: boolean) => void;
  /**
   * Called once the content and the pipelined RSET are written and both replies are awaited: the
   * session may carry the next transaction now. RFC 2920 lets the message content open a group,
   * so the next MAIL, RCPT and DATA may follow before the end-of-data reply; replies are read in
   * order, so each transaction still gets its own.
   */
  onSent?: () => void;
  /**
   * Asked just before the end of the content is written, when the session is to be reused: true
   * when a delivery is already waiting for this session. Then no RSET goes out — after the end of
   * data the server is back in its initial state whatever it answers (RFC 5321 4.1.1.4), and the
   * waiting delivery's MAIL follows at once, so it is also the probe that the session is alive —
   * and the session is handed over (`onSent`). Otherwise RSET goes with the end of data, as the
   * probe of a session that waits in the cache (Postfix sends its RSET probe on reuse).
   */
  nextWaiting?: () => boolean;
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

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

/** MAIL FROM command text with the parameters the peer supports. */
function mailCommand(f: Features, tx: Transaction, utf8: boolean): string {
  let cmd = `MAIL FROM:<${tx.sender}>`;
  if (f.size !== undefined && tx.size !== undefined) cmd += ` SIZE=${tx.size}`;
  if (tx.bodyType === '8BITMIME' && f.eightBitMime) cmd += ' BODY=8BITMIME';
  if (f.dsn) {
    if (tx.ret) cmd += ` RET=${tx.ret}`;
    if (tx.envid) cmd += ` ENVID=${xtext(tx.envid)}`;
  }
  if (utf8) cmd += ' SMTPUTF8';
  return cmd + '\r\n';
}

function rcptCommand(f: Features, r: TxRecipient): string {
  let cmd = `RCPT TO:<${r.address}>`;
  if (f.dsn) {
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
function outcome(c: Conn, address: string, r: ServerReply, command: string): RecipientOutcome {
  const klass = r.code >= 200 && r.code < 300 ? 2 : r.code >= 500 && r.code < 600 ? 5 : 4;
  const dsn = klass === 4 && !r.dsn.startsWith('4') ? '4.0.0' : r.dsn;
  return { address, klass, dsn, text: klass === 2 ? r.text : c.said(r, command) };
}

function every(tx: Transaction, klass: 4 | 5, dsn: string, text: string): RecipientOutcome[] {
  return tx.recipients.map((r) => ({ address: r.address, klass, dsn, text }));
}

/**
 * What the peer cannot take at all, decided before a command is sent: SMTPUTF8 addresses for a
 * peer without SMTPUTF8, a message over its SIZE. Undefined when the transaction may start.
 */
export function refuseBeforeMail(c: Conn, f: Features, tx: Transaction): RecipientOutcome[] | undefined {
  const needUtf8 = !!tx.smtputf8 && (!isAscii(tx.sender) || tx.recipients.some((r) => !isAscii(r.address)));
  if (needUtf8 && !f.smtputf8) {
    return every(tx, 5, '5.6.7', `SMTPUTF8 is required, but was not offered by host ${c.host}`);
  }
  if (tx.body && f.size && tx.size !== undefined && tx.size > f.size) {
    return every(tx, 5, '5.3.4', `message size ${tx.size} exceeds size limit ${f.size} of server ${c.host}`);
  }
  return undefined;
}

/**
 * MAIL, RCPT, DATA and the content; one outcome per recipient. Throws SessionError when the
 * session breaks (lost connection, timeout): the caller decides for the recipients left.
 */
export async function exchange(c: Conn, f: Features, tx: Transaction, reuse?: Reuse): Promise<RecipientOutcome[]> {
  const t = c.t;
  const useUtf8 = !!tx.smtputf8 && f.smtputf8;
  const mail = mailCommand(f, tx, useUtf8);
  const rcpts = tx.recipients.map((r) => rcptCommand(f, r));
  const results: RecipientOutcome[] = [];
  const accepted: number[] = [];
  let dataReply: ServerReply | undefined;

  if (f.pipelining) {
    // RFC 2920: MAIL, all RCPTs and DATA go out in one write; replies come back in order.
    c.write(mail + rcpts.join('') + (tx.body ? 'DATA\r\n' : ''), 'sending MAIL FROM');
    const mr = await c.read(t.smtp_mail_timeout, 'sending MAIL FROM');
    const rrs: ServerReply[] = [];
    for (let i = 0; i < rcpts.length; i++) rrs.push(await c.read(t.smtp_rcpt_timeout, 'sending RCPT TO'));
    if (tx.body) dataReply = await c.read(t.smtp_data_init_timeout, 'sending DATA command');
    if (mr.code !== 250) {
      if (dataReply?.code === 354) await abortData(c);
      return tx.recipients.map((r) => outcome(c, r.address, mr, 'MAIL FROM'));
    }
    tx.recipients.forEach((r, i) => {
      const o = outcome(c, r.address, rrs[i], 'RCPT TO');
      results.push(o);
      if (o.klass === 2) accepted.push(i);
    });
    if (!tx.body) return results;
    if (!accepted.length) {
      // Every RCPT failed; a server that still said 354 gets an empty message end.
      if (dataReply?.code === 354) await abortData(c);
      return results;
    }
  } else {
    c.write(mail, 'sending MAIL FROM');
    const mr = await c.read(t.smtp_mail_timeout, 'sending MAIL FROM');
    if (mr.code !== 250) return tx.recipients.map((r) => outcome(c, r.address, mr, 'MAIL FROM'));
    for (let i = 0; i < rcpts.length; i++) {
      c.write(rcpts[i], 'sending RCPT TO');
      const rr = await c.read(t.smtp_rcpt_timeout, 'sending RCPT TO');
      const o = outcome(c, tx.recipients[i].address, rr, 'RCPT TO');
      results.push(o);
      if (o.klass === 2) accepted.push(i);
    }
    if (!tx.body || !accepted.length) return results;
    c.write('DATA\r\n', 'sending DATA command');
    dataReply = await c.read(t.smtp_data_init_timeout, 'sending DATA command');
  }

  if (!dataReply || dataReply.code !== 354) {
    const r = dataReply!;
    for (const i of accepted) results[i] = outcome(c, tx.recipients[i].address, r, 'DATA');
    return results;
  }
  const reused = !!reuse && f.pipelining;
  const direct = reused && !!reuse.onSent && !!reuse.nextWaiting?.();
  const pipelinedReset = reused && !direct;
  await sendBody(c, tx.body!, pipelinedReset ? 'RSET\r\n' : '', direct);
  // Both reads are queued before the session is offered to the next transaction, whose replies follow.
  const doneReply = c.read(t.smtp_data_done_timeout, 'sending end of data -- message may be sent more than once');
  // The message's fate is known by then; whatever happens to RSET only decides whether the session is kept.
  const resetOk = pipelinedReset ? c.read(t.smtp_rset_timeout, 'sending RSET probe').then((r) => r.code === 250, () => false) : undefined;
  if (resetOk || direct) reuse?.onSent?.();
  const done = await doneReply;
  for (const i of accepted) results[i] = outcome(c, tx.recipients[i].address, done, 'end of DATA');
  if (resetOk) reuse?.onReset(await resetOk);
  return results;
}

async function abortData(c: Conn): Promise<void> {
  c.write('.\r\n', 'sending end of data -- message may be sent more than once');
  await c.read(c.t.smtp_data_done_timeout, 'sending end of data -- message may be sent more than once');
}

/**
 * Streams the content through the DATA encoder, each write bounded by smtp_data_xfer_timeout.
 * The content is read as an async iterable (no stream pipeline per message) and each encoded
 * chunk is held back until the next one arrives, so that the last goes out with the terminator
 * (and `after`, a pipelined RSET): a small message is one write. The last write is corked (till
 * the end of this turn) when the next transaction's commands are to join it.
 */
async function sendBody(c: Conn, body: () => AsyncIterable<Buffer | string>, after: string, corkLast = false): Promise<void> {
  const stage = 'sending message body';
  const enc = new DotEncoder(c.opts.smtpLineLengthLimit ?? 998);
  let held: Buffer | null = null;
  try {
    for await (const chunk of body()) {
      if (held) await send(c, held, stage);
      held = enc.encode(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
    }
    const tail = after ? Buffer.concat([enc.end(), Buffer.from(after, 'latin1')]) : enc.end();
    await send(c, held ? Buffer.concat([held, tail]) : tail, stage, !!after || corkLast);
  } catch (err) {
    c.destroy();
    if (err instanceof SessionError) throw err;
    // The content could not be read (queue file problem): not the peer's fault, try later.
    throw new SessionError('policy', '4.3.0', `error reading message content: ${(err as Error).message}`);
  }
}

/**
 * One write; when the socket's buffer is full, wait for it to drain (bounded by
 * smtp_data_xfer_timeout). `corked`: the write waits for the end of this turn of the event loop,
 * so that the next transaction's MAIL, RCPT and DATA (see Transaction.onSent) go out with it in
 * one segment.
 */
async function send(c: Conn, data: Buffer, stage: string, corked = false): Promise<void> {
  if (!c.alive) throw new SessionError('lost', '4.4.2', `lost connection with ${c.host} while ${stage}`);
  const sock = c.socket;
  if (corked) {
    sock.cork();
    process.nextTick(() => sock.uncork());
  }
  if (sock.write(data)) return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new SessionError('timeout', '4.4.2', `conversation with ${c.host} timed out while ${stage}`));
    }, c.t.smtp_data_xfer_timeout * 1000);
    const onDrain = () => { cleanup(); resolve(); };
    const onClose = () => { cleanup(); reject(new SessionError('lost', '4.4.2', `lost connection with ${c.host} while ${stage}`)); };
    const cleanup = () => {
      clearTimeout(timer);
      sock.off('drain', onDrain);
      sock.off('close', onClose);
    };
    sock.on('drain', onDrain);
    sock.on('close', onClose);
  });
}
