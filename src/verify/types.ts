// The contract between smtpd's reject_unverified_recipient / reject_unverified_sender and the
// verify service. smtpd asks; verify answers from its cache or after a probe, within the poll
// budget: (address_verify_poll_count - 1) × address_verify_poll_delay, as Postfix polls the
// verify service address_verify_poll_count times with address_verify_poll_delay between polls.
//
// How smtpd maps the answer (Postfix's reject_unverified_address()):
// - deliverable → DUNNO (evaluation continues).
// - undeliverable → unverified_*_reject_code; 5xx: "undeliverable address: TEXT", 4xx:
//   "unverified address: TEXT".
// - tempfail (the probe was deferred, e.g. the primary is down) → unverified_*_defer_code with
//   unverified_*_tempfail_action: "unverified address: TEXT".
// - tempfail with `problem` set (the verify service itself failed, e.g. Redis unreachable) →
//   Postfix's DEFER_IF_PERMIT "address verification problem". Never an acceptance.
// - pending (probe still running after the budget) → unverified_*_defer_code,
//   "unverified address: Address verification in progress".

export type VerifyStatus = 'deliverable' | 'undeliverable' | 'pending' | 'tempfail';

export interface VerifyResult {
  status: VerifyStatus;
  /** The reason: the primary's reply for undeliverable, the failure for tempfail. */
  text: string;
  /** True when the verify service could not answer (store down): reply "address verification problem". */
  problem?: boolean;
}

export interface Verifier {
  check(address: string, kind: 'recipient' | 'sender'): Promise<VerifyResult>;
  /** True for the address-verification probe sender (address_verify_sender, with its TTL stamp). */
  isProbeSender?(address: string): boolean;
}
