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
    let atLineStart = this.atLineStart;
    let afterCr = this.afterCr;
    let column = this.column;
    for (let i = 0; i < chunk.length; i++) {
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
    return out.subarray(0, o);
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
