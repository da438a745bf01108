// One outbound SMTP session, as smtp(8) runs it: connect, greeting, EHLO (HELO when EHLO gets a
// 5xx), STARTTLS per smtp_tls_security_level, then any number of mail transactions (RSET between
// them) and QUIT. Every wait has its own Postfix timeout; every failure is reported with
// Postfix's text. One file per stage: conn.ts (connect, read, write), replies.ts (the reply
// reader), handshake.ts (greeting, EHLO, STARTTLS), transaction.ts (MAIL, RCPT, DATA, content);
// this class keeps the session's life cycle and what the connection cache needs to know.
//
// Why not nodemailer's SMTPConnection: it gives one result per message (not per recipient),
// cannot stop after RCPT (address probes without DATA), does not expose session reuse with RSET,
// and does not pipeline MAIL+RCPT+DATA. Those four are what a backup MX needs.
//
// Trusts nothing from the peer (see replies.ts and transaction.ts).

import { Conn, connectSocket } from './conn.js';
import { handshake, hello, noFeatures, type Features } from './handshake.js';
import type { MxAddress } from './nexthop.js';
import type { SessionOptions } from './options.js';
import { exchange, refuseBeforeMail, type RecipientOutcome, type Transaction } from './transaction.js';
import { sendOriginalClient, type OriginalClient } from './xforward.js';

export class SmtpSession {
  readonly address: MxAddress;
  /** "NAME[IP]". */
  readonly host: string;
  /** "NAME[IP]:PORT", the relay= field. */
  readonly relay: string;
  features: Features = noFeatures();
  /** Transactions completed on this session. */
  uses = 0;
  readonly createdAt = Date.now();
  lastUsed = Date.now();
  secure = false;
  /**
   * XCLIENT made the peer take this session for a message's original client. It is never reused:
   * the peer now judges this session's authority by that client's address, so a second XCLIENT is
   * refused and the next message would go out under the first one's name (seen with Postfix).
   */
  private impersonating = false;

  private constructor(private readonly conn: Conn) {
    this.address = conn.address;
    this.host = conn.host;
    this.relay = conn.relay;
  }

  get alive(): boolean {
    return this.conn.alive;
  }

  /** Resolves when the connection has closed. */
  get closed(): Promise<void> {
    return this.conn.closed;
  }

  /** Connects, reads the greeting, says EHLO/HELO and negotiates TLS. */
  static async open(address: MxAddress, opts: SessionOptions): Promise<SmtpSession> {
    const socket = await connectSocket(address, opts);
    const session = new SmtpSession(new Conn(address, socket, opts));
    try {
      await handshake(session.conn, session);
    } catch (err) {
      session.destroy();
      throw err;
    }
    return session;
  }

  /**
   * Runs one mail transaction and returns one outcome per recipient. Throws SessionError when the
   * session breaks (lost connection, timeout): the caller decides for the recipients left.
   */
  async transaction(tx: Transaction, origin?: OriginalClient, opts: { reuse?: boolean; onSent?: () => void; nextWaiting?: () => boolean } = {}): Promise<RecipientOutcome[]> {
    this.lastUsed = Date.now();
    this.resetDone = undefined;
    const refused = refuseBeforeMail(this.conn, this.features, tx);
    if (refused) return refused;
    const o = this.conn.opts;
    if (origin && (o.xforward || o.xclient)) {
      const sent = await sendOriginalClient(this.conn, this.features, origin, { xforward: !!o.xforward, xclient: !!o.xclient, rehello: () => hello(this.conn, origin.helo || undefined) });
      this.features = sent.features;
      this.impersonating ||= sent.impersonating;
    }
    // A session that said XCLIENT is never reused (Postfix refuses a second XCLIENT), so no RSET rides along.
    const reuse = !!opts.reuse && !this.impersonating;
    // Released: the session went on to the next transaction before this one's replies came
    // (Transaction.onSent); a failed RSET then closes it, and the next transaction with it.
    let released = false;
    const onSent = opts.onSent && reuse ? () => {
      released = true;
      this.uses++;
      opts.onSent!();
    } : undefined;
    const onReset = (ok: boolean) => {
      if (!released) this.resetDone = ok;
      else if (!ok) this.destroy();
    };
    const results = await exchange(this.conn, this.features, tx, reuse ? { onReset, onSent, nextWaiting: opts.nextWaiting } : undefined);
    if (!released) this.uses++;
    return results;
  }

  /** The outcome of an RSET pipelined with the last transaction's content (undefined: none was). */
  private resetDone: boolean | undefined;

  /** RSET between transactions; false when the session is no longer usable. */
  async reset(): Promise<boolean> {
    const c = this.conn;
    if (!c.alive || this.impersonating) return false;
    const pipelined = this.resetDone;
    this.resetDone = undefined;
    if (pipelined !== undefined) {
      if (!pipelined) this.destroy();
      return pipelined;
    }
    try {
      c.write('RSET\r\n', 'sending RSET probe');
      const r = await c.read(c.t.smtp_rset_timeout, 'sending RSET probe');
      if (r.code !== 250) {
        this.destroy();
        return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  /** QUIT and close; never throws. */
  async quit(): Promise<void> {
    const c = this.conn;
    if (!c.alive) return;
    try {
      c.write('QUIT\r\n', 'sending QUIT');
      await c.read(c.t.smtp_quit_timeout, 'sending QUIT');
    } catch {
      /* the peer may close first */
    }
    this.destroy();
  }

  destroy(): void {
    this.conn.destroy();
  }
}
