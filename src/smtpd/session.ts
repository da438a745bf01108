// The state of one SMTP session apart from its socket: who the client is, what it has said
// (HELO/EHLO, AUTH, STARTTLS) and the mail transaction in progress (sender, recipients, and the
// access(5) HOLD / DISCARD / PREPEND results collected for it). The command handlers read and
// change it; the connection owns the life cycle. It also builds the SessionInfo the restriction
// engine sees, and declares what a session takes from its listener (SessionContext).
// Trusts the handlers: a value lands here only after a handler has checked it.

import type { Envelope, EnvelopeRecipient } from '../mail/index.js';
import type { Logger } from '../log/index.js';
import type { RestrictionEngine, SessionInfo, Stage, Verdict } from './check/types.js';
import type { SmtpdSettings } from './settings.js';
import type { ClientNameLookup, Flusher, MessageSink } from './types.js';
import type { DovecotAuthClient } from './sasl/dovecot.js';
import type { ConnectionCounter } from './types.js';
import type { SmtpdNetworks } from './networks.js';
import type { MailParams } from './syntax.js';
import type { RejectContext } from './log.js';

/** What a session needs from its listener; fixed for the session's life (reload-safe). */
export interface SessionContext {
  settings: SmtpdSettings;
  /** The generation's network lists (event limit exceptions, bare newline exclusions). */
  networks: SmtpdNetworks;
  engine: RestrictionEngine;
  queue: MessageSink;
  flusher?: Flusher;
  dns?: ClientNameLookup;
  log: Logger;
  anvil: ConnectionCounter;
  sasl?: DovecotAuthClient;
  /** master.cf service name, for anvil warnings. */
  service: string;
  /** Called once when the session is over (engine reference counting). */
  release(): void;
}

/** What the session reads from its connection. */
export interface Peer {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly secure: boolean;
  readonly instance: string;
}

export class SessionState {
  /** Verified (forward-confirmed) client name, or 'unknown'. */
  clientName = 'unknown';
  /** Unverified reverse name (PTR), or 'unknown'. */
  reverseName = 'unknown';
  /** The client name lookup failed temporarily. */
  nameTemp = false;
  /** `name[address]`, as the log lines name the client; '' until the connection is set up. */
  client = '';
  helo?: string;
  esmtp = false;
  saslUser?: string;
  saslMethod?: string;
  /** STARTTLS done and no EHLO since: MAIL needs a new EHLO. */
  afterStarttls = false;
  /** A connect-stage reject, answered at MAIL or ETRN (the client still gets to say who it is). */
  connectVerdict?: Verdict;
  /** The client sent a command before our previous reply (unauthorized pipelining). */
  illegalPipelining = false;

  // --- the mail transaction ---
  sender?: string;
  mailParams: MailParams = {};
  rcpts: EnvelopeRecipient[] = [];
  prepend: string[] = [];
  /** access(5) HOLD / DISCARD texts collected in this transaction. */
  holdText: string | undefined;
  discardText: string | undefined;
  /** BDAT (RFC 3030): none, chunks being taken (ok), or skipping chunks after an error until LAST or RSET. */
  bdatState: 'none' | 'ok' | 'error' = 'none';
  /** The message BDAT chunks go into; aborted when the transaction ends without it. */
  bdatMessage?: { abort(): Promise<void> };

  constructor(private readonly peer: Peer) {}

  resetTransaction(): void {
    this.sender = undefined;
    this.mailParams = {};
    this.rcpts = [];
    this.prepend = [];
    this.holdText = undefined;
    this.discardText = undefined;
    this.bdatState = 'none';
    if (this.bdatMessage) void this.bdatMessage.abort();
    this.bdatMessage = undefined;
  }

  inTransaction(): boolean {
    return this.sender !== undefined;
  }

  /** RFC 3207 4.2: forget everything learned before the TLS handshake; a new EHLO is required. */
  forgetBeforeTls(): void {
    this.helo = undefined;
    this.esmtp = false;
    this.saslUser = this.saslMethod = undefined;
    this.resetTransaction();
    this.afterStarttls = true;
  }

  lastRecipient(): string | undefined {
    return this.rcpts.length ? this.rcpts[this.rcpts.length - 1].address : undefined;
  }

  protocolName(): 'SMTP' | 'ESMTP' {
    return this.esmtp ? 'ESMTP' : 'SMTP';
  }

  /** The protocol as the Received: header and the queue record name it (ESMTPSA & co). */
  envelopeProtocol(): Envelope['client']['protocol'] {
    if (!this.esmtp) return 'SMTP';
    return `ESMTP${this.peer.secure ? 'S' : ''}${this.saslUser ? 'A' : ''}` as Envelope['client']['protocol'];
  }

  /** The SASL login for the `client=` log line, when there is one. */
  saslLogin(): { method: string; username: string } | undefined {
    return this.saslUser ? { method: this.saslMethod as string, username: this.saslUser } : undefined;
  }

  /** The session as the restriction engine sees it at `stage`. */
  info(stage: Stage, extra: Partial<SessionInfo> = {}): SessionInfo {
    return {
      stage,
      clientAddress: this.peer.remoteAddress,
      clientPort: this.peer.remotePort,
      clientName: this.clientName,
      reverseClientName: this.reverseName,
      clientNameTempFail: this.nameTemp,
      serverAddress: this.peer.localAddress,
      serverPort: this.peer.localPort,
      helo: this.helo,
      protocol: this.protocolName(),
      tls: this.peer.secure,
      saslMethod: this.saslMethod,
      saslUsername: this.saslUser,
      sender: this.sender,
      recipient: this.lastRecipient(),
      recipientCount: this.rcpts.length,
      size: this.mailParams.size,
      pipelined: this.illegalPipelining,
      instance: this.peer.instance,
      ...extra,
    };
  }

  /** What a `NOQUEUE: reject:` (or hold, discard, warn) log line says about the session. */
  rejectCtx(stage: string, recipient?: string): RejectContext {
    return { stage, client: this.client, sender: this.sender, recipient, protocol: this.protocolName(), helo: this.helo };
  }
}
