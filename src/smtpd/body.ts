// Message content on its way from the DATA stream to the queue: line endings normalized to CRLF
// (a bare LF or a bare CR becomes CRLF, so nothing downstream can read a second message into it
// — SMTP smuggling), bytes counted against message_size_limit, and the Received: header Postfix's
// smtpd writes. The content arrives already dot-unstuffed and without its `.` terminator (the
// terminator is only ever <CR><LF>.<CR><LF>). Trusts nothing in the content.

import { mailDate } from '../mail/index.js';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

export class LineEndingNormalizer {
  private pendingCr = false;
  /** A line ended in a bare LF somewhere in the content. */
  bareLf = false;
  /** A bare CR (not followed by LF) appeared somewhere in the content. */
  bareCr = false;

  /** Normalize one chunk; state carries across chunks (a CR at a chunk's end waits for the next). */
  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let start = 0;
    let i = 0;
    if (this.pendingCr) {
      this.pendingCr = false;
      if (chunk.length && chunk[0] === LF) {
        out.push(CRLF);
        start = i = 1;
      } else {
        this.bareCr = true;
        out.push(CRLF);
      }
    }
    for (; i < chunk.length; i++) {
      const b = chunk[i];
      if (b === CR) {
        if (i + 1 >= chunk.length) {
          out.push(chunk.subarray(start, i));
          this.pendingCr = true;
          start = chunk.length;
          break;
        }
        if (chunk[i + 1] === LF) {
          i++;
          continue;
        }
        this.bareCr = true;
        out.push(chunk.subarray(start, i), CRLF);
        start = i + 1;
      } else if (b === LF) {
        this.bareLf = true;
        out.push(chunk.subarray(start, i), CRLF);
        start = i + 1;
      }
    }
    if (start < chunk.length) out.push(chunk.subarray(start));
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  /** What is still held back at the end of the content. */
  end(): Buffer {
    if (!this.pendingCr) return Buffer.alloc(0);
    this.pendingCr = false;
    this.bareCr = true;
    return Buffer.from(CRLF);
  }
}

export interface ReceivedInfo {
  helo?: string;
  clientName: string;
  clientAddress: string;
  myhostname: string;
  mailName: string;
  protocol: string;
  queueId?: string;
  recipients: string[];
  date: Date;
  /** The session's TLS, for smtpd_tls_received_header = yes. */
  tls?: { protocol: string; cipher: string; bits?: number };
}

/** The Received: header as Postfix's smtpd writes it (folded, CRLF-terminated). */
export function receivedHeader(r: ReceivedInfo): string {
  const addr = r.clientAddress.includes(':') ? `IPv6:${r.clientAddress}` : r.clientAddress;
  const lines = [`Received: from ${r.helo || r.clientName} (${r.clientName} [${addr}])`];
  if (r.tls) {
    // smtpd.c with smtpd_tls_received_header: protocol and cipher, then the client certificate.
    const bits = r.tls.bits ? ` (${r.tls.bits}/${r.tls.bits} bits)` : '';
    lines.push(`\t(using ${r.tls.protocol} with cipher ${r.tls.cipher}${bits})`, '\t(No client certificate requested)');
  }
  const by = `\tby ${r.myhostname} (${r.mailName}) with ${r.protocol}${r.queueId ? ` id ${r.queueId}` : ''}`;
  if (r.recipients.length === 1) {
    lines.push(by, `\tfor <${r.recipients[0]}>; ${mailDate(r.date)}`);
  } else {
    lines.push(by + ';', `\t${mailDate(r.date)}`);
  }
  return lines.join('\r\n') + '\r\n';
}
