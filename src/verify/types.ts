// The contract between smtpd's reject_unverified_recipient / reject_unverified_sender and the
// verify service. smtpd asks; verify answers from its cache or after a probe, within the poll
// budget (address_verify_poll_count × address_verify_poll_delay).

export type VerifyStatus = 'deliverable' | 'undeliverable' | 'pending' | 'tempfail';

export interface VerifyResult {
  status: VerifyStatus;
  /** The reason: the primary's reply for undeliverable, the failure for tempfail. */
  text: string;
}

export interface Verifier {
  check(address: string, kind: 'recipient' | 'sender'): Promise<VerifyResult>;
}
