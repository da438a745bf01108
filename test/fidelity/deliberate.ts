// Where Backstop deliberately differs from Postfix 3.7 — the one place that lists it. Each entry
// names the dialogue whose replies or log lines differ when both servers run with their own
// defaults ("defaults" mode), and why. With the same setting on both sides ("aligned" mode, see
// harness.ts ALIGNED_OVERRIDES) every dialogue must be identical. docs/fidelity.md repeats this list.
// Pure data.

export interface Deliberate {
  dialogue: string;
  why: string;
}

export const DELIBERATE: Deliberate[] = [
  { dialogue: 'EHLO then QUIT', why: 'mail_name = Backstop: the greeting says "ESMTP Backstop" (smtpd_banner = $myhostname ESMTP $mail_name)' },
];
