// The contract between the SMTP protocol side of smtpd and its restriction engine.
// The protocol side describes the session; the engine evaluates the restriction lists with
// Postfix's order and semantics (smtpd_delay_reject, permit/reject/dunno, defer_if_permit, ...)
// and returns one Verdict per stage. The protocol side sends the reply and logs
// `NOQUEUE: reject: ...` lines; the engine never touches the socket.

import type { Reply } from '../../mail/index.js';
import type { PolicySession, PolicyStage } from '../../policy/index.js';

export type Stage = PolicyStage;

/**
 * The session as the engine sees it: everything a policy request carries (policy declares that
 * part, PolicySession, so that it never imports smtpd) plus what only smtpd's own restrictions use.
 * Client and reverse names are 'unknown' when not known; the client name is forward-confirmed,
 * the reverse name (PTR) is not.
 */
export interface SessionInfo extends PolicySession {
  stage: Stage;
  /** True when the client name lookup failed temporarily. */
  clientNameTempFail?: boolean;
  /** True when the client sent this command before our previous reply (unauthorized pipelining). */
  pipelined?: boolean;
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
  /** For reject: the restriction that decided (e.g. reject_unauth_destination), for the metrics. */
  restriction?: string;
  /** A 421/521 reply: disconnect after sending it. */
  disconnect?: boolean;
}

export interface RestrictionEngine {
  /** Called at each stage; with smtpd_delay_reject = yes the connect/helo/mail lists run at RCPT. */
  check(session: SessionInfo): Promise<Verdict>;
  close(): Promise<void>;
}
