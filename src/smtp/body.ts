// The DATA encoder: turns message content into what goes on the wire between DATA and the final
// ".". Every line ending becomes CRLF — a bare LF or a bare CR ends a line too — and a line that
// starts with "." gets a second one (RFC 5321 4.5.2). So no byte sequence in the content can end
// DATA early or smuggle a second message (SMTP smuggling: "\n.\r\n", "\r.\r\n", "\n.\n").
// Lines longer than smtp_line_length_limit (998, RFC 5322's limit) are broken by inserting
// <CR><LF><SPACE>, as Postfix's smtp client does, so a strict primary does not refuse them.
// Trusts nothing in the content; keeps its state across chunks.

import { Transform, type TransformCallback } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/**
 * The encoder itself, as plain calls: `encode()` each chunk of content in order, then `end()` for
 * the terminator. The queue manager's delivery path uses it directly (no stream per message);
 * DataEncoder below wraps it as a Transform.
 */
export class DotEncoder {
  /** True at the start of a line (also at the very start of the content). */
  private atLineStart = true;
  /** The previous byte was a CR that we already turned into CRLF: swallow a following LF. */
  private afterCr = false;
  /** Bytes of content seen (before encoding). */
  bytesIn = 0;
  /** Bytes written on the current output line. */
  private column = 0;

  /** @param lineLimit smtp_line_length_limit; 0 = lines are never broken. */
  constructor(private readonly lineLimit = 998) {}

  encode(chunk: Buffer): Buffer {
    this.bytesIn += chunk.length;
    // Worst case every byte doubles (all "\n" or all "." at line starts), plus 3 bytes per break.
    const limit = this.lineLimit;
    const out = Buffer.allocUnsafe(chunk.length * 2 + (limit > 0 ? 3 * Math.ceil(chunk.length / limit) + 3 : 0));
    let o = 0;
    let i = 0;
    const n = chunk.length;
    // Fast path: whole lines that need no change (CRLF-terminated, no other CR, not starting with
    // a dot, within the line limit) are found with indexOf (memchr) and copied in one piece; only
    // the others go through the byte-by-byte loop. The loop alone cost 0.54 ms per 100 KB message
    // in the queue manager's drain.
    let nextCr = chunk.indexOf(CR);
    while (i < n) {
      if (this.atLineStart && !this.afterCr) {
        const runStart = i;
        for (;;) {
          const lf = chunk.indexOf(LF, i);
          if (lf === -1) break;
          if (nextCr !== -1 && nextCr < i) nextCr = chunk.indexOf(CR, i);
          const clean = lf > i && nextCr === lf - 1 && chunk[i] !== DOT && (limit <= 0 || lf - 1 - i <= limit);
          if (!clean) break;
          i = lf + 1;
        }
        if (i > runStart) {
          chunk.copy(out, o, runStart, i);
          o += i - runStart;
        }
        if (i >= n) break;
      }
      // One line (or the rest of the chunk) byte by byte.
      let lf = chunk.indexOf(LF, i);
      lf = lf === -1 ? n : lf + 1;
      o = this.encodeBytes(chunk, i, lf, out, o);
      i = lf;
    }
    return out.subarray(0, o);
  }

  /** The byte-by-byte encoder over chunk[from, to), writing at out[o]; returns the new end. */
  private encodeBytes(chunk: Buffer, from: number, to: number, out: Buffer, o: number): number {
    const limit = this.lineLimit;
    let atLineStart = this.atLineStart;
    let afterCr = this.afterCr;
    let column = this.column;
    for (let i = from; i < to; i++) {
      const b = chunk[i];
      if (b === LF) {
        if (!afterCr) {
          out[o++] = CR;
          out[o++] = LF;
        }
        afterCr = false;
        atLineStart = true;
        column = 0;
      } else if (b === CR) {
        out[o++] = CR;
        out[o++] = LF;
        afterCr = true;
        atLineStart = true;
        column = 0;
      } else {
        if (limit > 0 && column >= limit) {
          out[o++] = CR;
          out[o++] = LF;
          out[o++] = 0x20;
          column = 1;
        }
        if (atLineStart && b === DOT) {
          out[o++] = DOT;
          column++;
        }
        out[o++] = b;
        column++;
        atLineStart = false;
        afterCr = false;
      }
    }
    this.atLineStart = atLineStart;
    this.afterCr = afterCr;
    this.column = column;
    return o;
  }

  /** The terminator: content that does not end with a line ending gets one first. */
  end(): Buffer {
    return this.atLineStart ? Buffer.from('.\r\n') : Buffer.from('\r\n.\r\n');
  }
}

export class DataEncoder extends Transform {
  private readonly enc: DotEncoder;

  /** @param lineLimit smtp_line_length_limit; 0 = lines are never broken. */
  constructor(lineLimit = 998) {
    super();
    this.enc = new DotEncoder(lineLimit);
  }

  /** Bytes of content seen (before encoding). */
  get bytesIn(): number {
    return this.enc.bytesIn;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, this.enc.encode(chunk));
  }

  override _flush(cb: TransformCallback): void {
    cb(null, this.enc.end());
  }
}

/** Encodes a whole buffer at once (tests, small messages). */
export function encodeData(content: Buffer | string, lineLimit = 998): Buffer {
  const enc = new DotEncoder(lineLimit);
  return Buffer.concat([enc.encode(typeof content === 'string' ? Buffer.from(content, 'utf8') : content), enc.end()]);
}
