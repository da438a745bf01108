// One queue file: the envelope, the content and the state journal (format in docs/queue-format.md).
// Encoding builds the immutable part (envelope + content + END); parsing turns the bytes of a file
// back into a typed head. The parser trusts nothing in the file: a missing or misplaced record,
// a bad number or a short file is a QueueFileError, and the caller moves the file to corrupt/.
// A torn state update at the very end (a crash during an append) is not corruption: it was never
// acknowledged, so it is dropped and the previous state stands.

import { crc32 } from 'node:zlib';
import type { Envelope, EnvelopeRecipient, DsnNotify } from '../mail/index.js';
import { REC, MAGIC, encodeRecord, readRecord, recordData, type RawRecord } from './records.js';

export type QueueName = 'incoming' | 'active' | 'deferred' | 'hold' | 'corrupt';
export const QUEUE_NAMES: readonly QueueName[] = ['incoming', 'active', 'deferred', 'hold', 'corrupt'];
/** Queues that hold committed messages (incoming holds files that never got a 250). */
export const MESSAGE_QUEUES: readonly QueueName[] = ['hold', 'active', 'deferred'];

export type RecipientStatus = 'pending' | 'delivered' | 'bounced';

export interface RecipientState {
  status: RecipientStatus;
  /** Last delivery result text (the "delay reason" that mailq shows for pending recipients). */
  reason?: string;
  /** RFC 3463 status of the last result, e.g. "4.4.1". */
  dsn?: string;
  /** Remote MTA that gave the result, e.g. "mx1.example.com". */
  remoteMta?: string;
  /** Diagnostic-Code value, e.g. "smtp; 550 5.1.1 unknown user". */
  diagnosticCode?: string;
  /** When the result was recorded (ms since the epoch). */
  time?: number;
}

export interface RetryState {
  /** Earliest time of the next delivery attempt (ms since the epoch); 0 = now. */
  nextAttempt: number;
  attempts: number;
  lastReason?: string;
  delayWarningSent: boolean;
  /** postsuper -e/-f style forced expiry (shown as '#' by mailq). */
  forcedExpire: boolean;
}

/** Everything in a queue file except the content. */
export interface QueueFileHead {
  envelope: Envelope;
  states: RecipientState[];
  retry: RetryState;
  /** Content size in bytes (header + body, CRLF, as received). */
  messageSize: number;
  /** Message-ID header value as received, if any. */
  messageId?: string;
  /** Offset of the first content record. */
  contentOffset: number;
  /** Offset of the END record. */
  endOffset: number;
  /** Offset just after END: start of the state journal. */
  journalOffset: number;
  /** Bytes of the file that hold valid records (a torn tail lies beyond). */
  validLength: number;
  /** True when a torn state update was found after validLength. */
  torn: boolean;
}

export class QueueFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueueFileError';
  }
}

/** A state update as stored in one UPDATE record. */
export interface StateUpdate {
  /** Time of the update, ms. */
  t: number;
  /** Recipients whose state changes. */
  r?: { i: number[]; s: RecipientStatus; why?: string; dsn?: string; mta?: string; diag?: string };
  /** Retry state fields that change. */
  q?: Partial<RetryState>;
  /** Full snapshot (written by compaction): replaces all states. */
  snap?: { r: RecipientState[]; q: RetryState };
}

const SIZE_WIDTH = 15;
/** Length of the SIZE record's data: four right-aligned numbers separated by spaces. */
const SIZE_DATA_LEN = SIZE_WIDTH * 4 + 3;

export function encodeSizeData(messageSize: number, contentOffset: number, endOffset: number, nrcpt: number): Buffer {
  const f = (n: number) => String(n).padStart(SIZE_WIDTH, ' ');
  return Buffer.from(`${f(messageSize)} ${f(contentOffset)} ${f(endOffset)} ${f(nrcpt)}`, 'latin1');
}

export function defaultRetry(): RetryState {
  return { nextAttempt: 0, attempts: 0, delayWarningSent: false, forcedExpire: false };
}

/**
 * The records before the content: VERSION, SIZE (placeholder values, patched after the content is
 * written), TIME, ATTRs, FROM, recipients, MESG. Returns the bytes and the SIZE record's offsets.
 */
export function encodeHead(env: Envelope): { head: Buffer; sizeDataOffset: number; crcStart: number } {
  const recs: Buffer[] = [];
  recs.push(encodeRecord(REC.VERSION, MAGIC));
  const sizeRec = encodeRecord(REC.SIZE, encodeSizeData(0, 0, 0, 0));
  const sizeDataOffset = recs[0].length + (sizeRec.length - SIZE_DATA_LEN);
  recs.push(sizeRec);
  const crcStart = recs[0].length + sizeRec.length;
  recs.push(encodeRecord(REC.TIME, String(Math.floor(env.arrivalTime))));
  const attr = (name: string, value: string | undefined) => {
    if (value !== undefined) recs.push(encodeRecord(REC.ATTR, `${name}=${value}`));
  };
  attr('client_name', env.client.name);
  attr('client_address', env.client.address);
  attr('helo_name', env.client.helo);
  attr('protocol_name', env.client.protocol);
  attr('sasl_username', env.client.saslUsername);
  attr('dsn_ret', env.ret);
  attr('dsn_envid', env.envid);
  attr('body_type', env.body);
  if (env.smtputf8) attr('smtputf8', 'yes');
  recs.push(encodeRecord(REC.FROM, env.sender));
  for (const r of env.recipients) {
    if (r.orcpt !== undefined) recs.push(encodeRecord(REC.ORCPT, r.orcpt));
    if (r.notify !== undefined) recs.push(encodeRecord(REC.NOTIFY, r.notify.join(',')));
    recs.push(encodeRecord(REC.RCPT, r.address));
  }
  recs.push(encodeRecord(REC.MESG, ''));
  return { head: Buffer.concat(recs), sizeDataOffset, crcStart };
}

/** The UPDATE record for a state change: CRC-32 of the JSON, a space, the JSON. */
export function encodeUpdate(u: StateUpdate): Buffer {
  const json = Buffer.from(JSON.stringify(u), 'utf8');
  const crc = crc32(json).toString(16).padStart(8, '0');
  return encodeRecord(REC.UPDATE, Buffer.concat([Buffer.from(crc + ' ', 'latin1'), json]));
}

export function applyUpdate(states: RecipientState[], retry: RetryState, u: StateUpdate): RetryState {
  if (u.snap) {
    if (u.snap.r.length !== states.length) throw new QueueFileError(`snapshot has ${u.snap.r.length} recipients, file has ${states.length}`);
    for (let i = 0; i < states.length; i++) states[i] = { ...u.snap.r[i] };
    retry = { ...u.snap.q };
  }
  if (u.r) {
    for (const i of u.r.i) {
      if (!Number.isInteger(i) || i < 0 || i >= states.length) throw new QueueFileError(`update names recipient ${i} of ${states.length}`);
      const st: RecipientState = { status: u.r.s, time: u.t };
      if (u.r.why !== undefined) st.reason = u.r.why;
      if (u.r.dsn !== undefined) st.dsn = u.r.dsn;
      if (u.r.mta !== undefined) st.remoteMta = u.r.mta;
      if (u.r.diag !== undefined) st.diagnosticCode = u.r.diag;
      states[i] = st;
    }
  }
  if (u.q) retry = { ...retry, ...u.q };
  return retry;
}

function num(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new QueueFileError(`bad ${what}: ${JSON.stringify(text.slice(0, 40))}`);
  return Number(text);
}

const NOTIFY_VALUES = new Set(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY']);

/**
 * Parse the head (records up to MESG) from `buf`, which holds the file from offset 0. Returns the
 * parsed head fields plus the SIZE values; the END record and journal are checked by parseTail().
 */
export function parseHead(buf: Buffer): {
  env: Envelope;
  messageSize: number;
  contentOffset: number;
  endOffset: number;
  messageId?: string;
  nrcpt: number;
} {
  let off = 0;
  const next = (): { rec: RawRecord; data: Buffer } => {
    const r = readRecord(buf, off);
    if (!r.ok) throw new QueueFileError(r.reason === 'truncated' ? 'file is truncated before the message content' : 'bad record length');
    off = r.rec.end;
    return { rec: r.rec, data: recordData(buf, r.rec) };
  };
  const magic = encodeRecord(REC.VERSION, MAGIC);
  if (buf.length < magic.length ? !magic.subarray(0, buf.length).equals(buf) : !magic.equals(buf.subarray(0, magic.length))) {
    throw new QueueFileError('not a Backstop queue file (bad VERSION record)');
  }
  const v = next();
  if (v.rec.type !== REC.VERSION || v.data.toString('latin1') !== MAGIC) throw new QueueFileError('not a Backstop queue file (bad VERSION record)');
  const s = next();
  if (s.rec.type !== REC.SIZE || s.rec.length !== SIZE_DATA_LEN) throw new QueueFileError('missing SIZE record');
  const parts = s.data.toString('latin1').trim().split(/ +/);
  if (parts.length !== 4) throw new QueueFileError('bad SIZE record');
  const [messageSize, contentOffset, endOffset, nrcpt] = parts.map((p, i) => num(p, ['message size', 'content offset', 'end offset', 'recipient count'][i]));
  const env: Envelope = {
    sender: '',
    recipients: [],
    client: { name: '', address: '', helo: '', protocol: 'SMTP' },
    arrivalTime: 0,
  };
  let messageId: string | undefined;
  let haveTime = false;
  let haveFrom = false;
  let orcpt: string | undefined;
  let notify: DsnNotify[] | undefined;
  for (;;) {
    const { rec, data } = next();
    const text = data.toString('utf8');
    switch (rec.type) {
      case REC.TIME:
        env.arrivalTime = num(text, 'arrival time');
        haveTime = true;
        break;
      case REC.ATTR: {
        const eq = text.indexOf('=');
        if (eq <= 0) throw new QueueFileError(`bad attribute record: ${JSON.stringify(text.slice(0, 40))}`);
        const name = text.slice(0, eq);
        const value = text.slice(eq + 1);
        if (name === 'client_name') env.client.name = value;
        else if (name === 'client_address') env.client.address = value;
        else if (name === 'helo_name') env.client.helo = value;
        else if (name === 'protocol_name') env.client.protocol = value as Envelope['client']['protocol'];
        else if (name === 'sasl_username') env.client.saslUsername = value;
        else if (name === 'dsn_ret') {
          if (value !== 'FULL' && value !== 'HDRS') throw new QueueFileError(`bad dsn_ret: ${value}`);
          env.ret = value;
        } else if (name === 'dsn_envid') env.envid = value;
        else if (name === 'body_type') env.body = value;
        else if (name === 'smtputf8') env.smtputf8 = value === 'yes';
        else if (name === 'message_id') messageId = value;
        // Unknown attributes are kept out of the envelope but are not an error (newer writer).
        break;
      }
      case REC.FROM:
        env.sender = text;
        haveFrom = true;
        break;
      case REC.ORCPT:
        orcpt = text;
        break;
      case REC.NOTIFY: {
        const vals = text.split(',');
        for (const n of vals) if (!NOTIFY_VALUES.has(n)) throw new QueueFileError(`bad DSN NOTIFY: ${n}`);
        notify = vals as DsnNotify[];
        break;
      }
      case REC.RCPT: {
        const r: EnvelopeRecipient = { address: text };
        if (orcpt !== undefined) r.orcpt = orcpt;
        if (notify !== undefined) r.notify = notify;
        env.recipients.push(r);
        orcpt = undefined;
        notify = undefined;
        break;
      }
      case REC.MESG: {
        if (!haveTime) throw new QueueFileError('missing TIME record');
        if (!haveFrom) throw new QueueFileError('missing FROM record');
        if (env.recipients.length !== nrcpt) throw new QueueFileError(`recipient count ${env.recipients.length} does not match SIZE record (${nrcpt})`);
        if (env.recipients.length === 0) throw new QueueFileError('no recipients');
        if (contentOffset !== off) throw new QueueFileError('content offset in SIZE record does not match');
        if (endOffset < contentOffset) throw new QueueFileError('bad end offset in SIZE record');
        return { env, messageSize, contentOffset, endOffset, messageId, nrcpt };
      }
      default:
        throw new QueueFileError(`unexpected record type '${rec.type}' before message content`);
    }
  }
}

/**
 * Parse END and the journal from `tail`, which holds file bytes from `endOffset` to the end of the
 * file. Applies the updates to fresh states and returns them with the valid length.
 */
export function parseTail(
  tail: Buffer,
  endOffset: number,
  nrcpt: number,
): { crc: number; states: RecipientState[]; retry: RetryState; validLength: number; torn: boolean } {
  const e = readRecord(tail, endOffset, endOffset);
  if (!e.ok) throw new QueueFileError('file is truncated: no END record');
  if (e.rec.type !== REC.END || e.rec.length !== 8) throw new QueueFileError('missing END record');
  const crcText = recordData(tail, e.rec, endOffset).toString('latin1');
  if (!/^[0-9a-f]{8}$/.test(crcText)) throw new QueueFileError('bad END record');
  const states: RecipientState[] = Array.from({ length: nrcpt }, () => ({ status: 'pending' as const }));
  let retry = defaultRetry();
  let off = e.rec.end;
  const fileEnd = endOffset + tail.length;
  let torn = false;
  while (off < fileEnd) {
    const r = readRecord(tail, off, endOffset);
    if (!r.ok || r.rec.type !== REC.UPDATE || r.rec.length < 10) {
      torn = true;
      break;
    }
    const data = recordData(tail, r.rec, endOffset);
    const json = data.subarray(9);
    if (data[8] !== 0x20 || data.subarray(0, 8).toString('latin1') !== crc32(json).toString(16).padStart(8, '0')) {
      torn = true;
      break;
    }
    let u: StateUpdate;
    try {
      u = JSON.parse(json.toString('utf8')) as StateUpdate;
    } catch {
      throw new QueueFileError('state update is not valid JSON');
    }
    retry = applyUpdate(states, retry, u);
    off = r.rec.end;
  }
  return { crc: parseInt(crcText, 16), states, retry, validLength: off, torn };
}

/** Message-ID header value from the header section of `content` (unfolded, trimmed). */
export function findMessageId(header: Buffer): string | undefined {
  const text = header.toString('latin1');
  const m = /(?:^|\r\n)message-id:[ \t]*((?:[^\r\n]|\r\n[ \t])*)/i.exec(text);
  return m ? m[1].replace(/\r\n[ \t]/g, ' ').trim() : undefined;
}
