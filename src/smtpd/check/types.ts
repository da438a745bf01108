// The contract between the SMTP protocol side of smtpd and its restriction engine.
// The protocol side describes the session; the engine evaluates the restriction lists with
// Postfix's order and semantics (smtpd_delay_reject, permit/reject/dunno, defer_if_permit, ...)
// and returns one Verdict per stage. The protocol side sends the reply and logs
// `NOQUEUE: reject: ...` lines; the engine never touches the socket.

import type { Reply } from '../../mail/index.js';

export type Stage = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'end-of-data' | 'etrn';

export interface SessionInfo {
  stage: Stage;
  clientAddress: string;
  clientPort: number;
  /** Verified (forward-confirmed) client name, or 'unknown'. */
  clientName: string;
  /** Unverified reverse name (PTR), or 'unknown'. */
  reverseClientName: string;
  /** True when the client name lookup failed temporarily. */
  clientNameTempFail?: boolean;
  serverAddress: string;
  serverPort: number;
  helo?: string;
  protocol: 'SMTP' | 'ESMTP';
  tls: boolean;
  saslMethod?: string;
  saslUsername?: string;
  /** SASL sender (MAIL FROM AUTH=), for the policy protocol. */
  saslSender?: string;
  /** TLS details for the policy protocol, when known. */
  ccertSubject?: string;
  ccertIssuer?: string;
  ccertFingerprint?: string;
  ccertPubkeyFingerprint?: string;
  encryptionProtocol?: string;
  encryptionCipher?: string;
  encryptionKeysize?: number;
  stress?: boolean;
  /** MAIL FROM address ('' = null sender), once given. */
  sender?: string;
  /** The recipient being checked (rcpt stage) or the last one accepted. */
  recipient?: string;
  recipientCount: number;
  /** SIZE= from MAIL FROM, or the message size at end-of-data. */
  size?: number;
  /** ETRN argument at the etrn stage. */
  etrnDomain?: string;
  /** True when the client sent this command before our previous reply (unauthorized pipelining). */
  pipelined?: boolean;
  queueId?: string;
  /** A stable id of this session (policy protocol `instance`). */
  instance: string;
}

/** The outcome of one stage. */
export interface Verdict {
  action: 'accept' | 'reject';
  /** Set for reject: the reply to send (4xx or 5xx). */
  reply?: Reply;
  /** access(5) side effects collected along the way. */
  hold?: string;
  discard?: string;
  prepend?: string[];
  /** WARN / warn_if_reject texts, logged as `warning:`-free "reject_warning" lines. */
  warnings?: string[];
  /** access(5) FILTER transport:destination (the last one wins). */
  filter?: string;
  /** access(5) REDIRECT address (the last one wins). */
  redirect?: string;
  /** access(5) BCC addresses. */
  bcc?: string[];
  /** access(5) INFO/WARN log texts. */
  info?: string[];
  /** A 421/521 reply: disconnect after sending it. */
  disconnect?: boolean;
}

export interface RestrictionEngine {
  /** Called at each stage; with smtpd_delay_reject = yes the connect/helo/mail lists run at RCPT. */
  check(session: SessionInfo): Promise<Verdict>;
  close(): Promise<void>;
}
