// The SMTP reply: code, enhanced status code and text. One error type carries it across every
// module boundary (smtpd hands it to smtp-server, which answers `responseCode || 550` — so every
// error we raise carries its code; an error without one would become a permanent reject).
// Trusts nothing: codes are checked on construction.

export interface Reply {
  /** Three-digit SMTP reply code, 2xx..5xx. */
  code: number;
  /** RFC 3463 enhanced status code, e.g. "5.7.1"; empty when the reply has none. */
  dsn: string;
  /** Public text sent to the peer (without code and enhanced code). */
  text: string;
}

export function reply(code: number, dsn: string, text: string): Reply {
  if (!Number.isInteger(code) || code < 200 || code > 599) throw new RangeError(`invalid SMTP reply code: ${code}`);
  return { code, dsn, text };
}

/** "550 5.1.1 text" as sent on the wire (single line). */
export function formatReply(r: Reply): string {
  return r.dsn ? `${r.code} ${r.dsn} ${r.text}` : `${r.code} ${r.text}`;
}

/** An Error that carries an SMTP reply; `responseCode` is what smtp-server reads. */
export class SmtpError extends Error {
  readonly reply: Reply;
  readonly responseCode: number;
  /** Private cause for the log, never sent to the peer. */
  readonly causeText?: string;

  constructor(r: Reply, causeText?: string) {
    super(formatReply(r));
    this.name = 'SmtpError';
    this.reply = r;
    this.responseCode = r.code;
    this.causeText = causeText;
  }
}

/** Turns anything thrown into an SmtpError; unknown errors are temporary (451 4.3.0). */
export function toSmtpError(err: unknown): SmtpError {
  if (err instanceof SmtpError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new SmtpError(reply(451, '4.3.0', 'Error: queue file write error'), msg);
}
