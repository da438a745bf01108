// Queue file records, Postfix style: one type byte, the data length as a base-128 varint (low 7
// bits first, high bit = more follows, as Postfix's rec_put() does), then the data. A reader
// trusts nothing: every length is checked against the bytes that are really there, so a file cut
// short is reported as truncated instead of being read past its end.

/** Record types. Letters follow Postfix's rec_type.h where a Postfix record has the same job. */
export const REC = {
  /** Magic and format version; always the first record. */
  VERSION: 'V',
  /** Fixed-width sizes: message_size content_offset end_offset rcpt_count (Postfix REC_TYPE_SIZE). */
  SIZE: 'C',
  /** Arrival time, milliseconds since the epoch (Postfix REC_TYPE_TIME). */
  TIME: 'T',
  /** Named attribute, "name=value" (Postfix REC_TYPE_ATTR). */
  ATTR: 'A',
  /** Envelope sender (Postfix REC_TYPE_FROM is 'S'). */
  FROM: 'S',
  /** DSN ORCPT of the next recipient (Postfix REC_TYPE_DSN_ORCPT is 'o'). */
  ORCPT: 'o',
  /** DSN NOTIFY of the next recipient, comma-separated (Postfix uses 'n'). */
  NOTIFY: 'n',
  /** Recipient (Postfix REC_TYPE_RCPT). */
  RCPT: 'R',
  /** Start of message content (Postfix REC_TYPE_MESG). */
  MESG: 'M',
  /** A chunk of message content, CRLF line endings, at most CONTENT_CHUNK bytes. */
  CONTENT: 'L',
  /** End of message content (Postfix REC_TYPE_XTRA). */
  XTRA: 'X',
  /** End of the immutable part; data = CRC-32 (8 hex digits) of the bytes after SIZE up to here. */
  END: 'E',
  /** State update appended after END; data = CRC-32 (8 hex digits), a space, JSON. */
  UPDATE: 'U',
} as const;

export const MAGIC = 'BACKSTOP-QUEUE 1';
export const CONTENT_CHUNK = 65536;

/** Byte size of the varint that encodes `n`. */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Encode one record into a fresh buffer. */
export function encodeRecord(type: string, data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const head = Buffer.allocUnsafe(1 + varintSize(body.length));
  writeHeader(head, 0, type, body.length);
  return body.length === 0 ? head : Buffer.concat([head, body], head.length + body.length);
}

/** Write type byte and varint length at `off`; returns the offset after the header. */
export function writeHeader(buf: Buffer, off: number, type: string, len: number): number {
  buf[off++] = type.charCodeAt(0);
  let n = len;
  while (n >= 0x80) {
    buf[off++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[off++] = n;
  return off;
}

export interface RawRecord {
  type: string;
  /** Offset of the record's type byte. */
  offset: number;
  /** Offset of the first data byte. */
  dataOffset: number;
  length: number;
  /** Offset just after the record. */
  end: number;
}

export type ReadResult = { ok: true; rec: RawRecord } | { ok: false; reason: 'truncated' | 'bad length' };

/** Read the record that starts at `off` in `buf`. `base` is buf[0]'s offset in the file. */
export function readRecord(buf: Buffer, off: number, base = 0): ReadResult {
  const start = off - base;
  if (start >= buf.length) return { ok: false, reason: 'truncated' };
  const type = String.fromCharCode(buf[start]);
  let pos = start + 1;
  let len = 0;
  let mul = 1;
  for (let i = 0; ; i++) {
    if (pos >= buf.length) return { ok: false, reason: 'truncated' };
    if (i >= 5) return { ok: false, reason: 'bad length' };
    const b = buf[pos++];
    len += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) break;
  }
  const end = pos + len;
  if (end > buf.length) return { ok: false, reason: 'truncated' };
  return { ok: true, rec: { type, offset: start + base, dataOffset: pos + base, length: len, end: end + base } };
}

export function recordData(buf: Buffer, rec: RawRecord, base = 0): Buffer {
  return buf.subarray(rec.dataOffset - base, rec.end - base);
}
