// Where Backstop deliberately differs from Postfix 3.7 — the one place that lists it. Each entry
// says which differences it covers when both servers run with their own defaults ("defaults"
// mode) and why. With the same setting on both sides ("aligned" mode: harness.ts
// ALIGNED_OVERRIDES) every dialogue must be identical. docs/fidelity.md repeats this list.
// Pure data.

export interface Deliberate {
  /** The parameter (or behaviour) that differs. */
  what: string;
  why: string;
  /** The modes it applies in (default: defaults only; a setting-independent choice: both). */
  modes?: Array<'defaults' | 'aligned'>;
  /** The dialogues whose differences it explains (every line of them), or … */
  dialogues?: string[];
  /** … the reply or log lines it explains, in any dialogue. */
  lines?: (postfix: string, backstop: string) => boolean;
}

export const DELIBERATE: Deliberate[] = [
  {
    what: 'mail_name = Backstop',
    why: 'the greeting names the software that answers (smtpd_banner = $myhostname ESMTP $mail_name)',
    lines: (p, b) => /^220 \S+ ESMTP Postfix$/.test(p) && /^220 \S+ ESMTP Backstop$/.test(b),
  },
  {
    what: 'smtpd_forbid_unauth_pipelining = yes (Postfix 3.7: no)',
    why: 'a client that pipelines where RFC 2920 forbids it (after EHLO, HELO, DATA, NOOP, VRFY, or without EHLO) gets 554 5.5.0 and is disconnected, closing the SMTP smuggling and spam-bot paths; Postfix 3.9 made it its default',
    dialogues: ['command after EHLO in the same write', 'pipelining after HELO', 'message text pipelined after DATA', 'NOOP and VRFY followed by more', 'BDAT after HELO'],
  },
  {
    what: 'smtpd_forbid_bare_newline = normalize (Postfix 3.7: no)',
    why: 'a bare <LF> never ends DATA, so <LF>.<LF> cannot smuggle a second message (safety rule 5); Postfix 3.9 made it its default',
    dialogues: ['DATA with a bare LF dot line'],
  },
  {
    what: 'RCPT TO:<postmaster> without a domain',
    why: 'Postfix accepts it before any restriction (RFC 5321 4.5.1); Backstop keeps no local mailbox to deliver it to, so it goes through the restrictions like any address (and is refused unless they permit it)',
    modes: ['defaults', 'aligned'],
    dialogues: ['RCPT TO:<postmaster>'],
  },
];

/**
 * Not a difference the suite reports (the harness normalises it), listed for completeness:
 * Postfix opens its queue file at the first accepted RCPT (smtpd_delay_open_until_valid_rcpt),
 * Backstop reserves its queue id at DATA/BDAT, so a `warning:` logged in between (a malformed or
 * refused BDAT) names the queue id in Postfix and NOQUEUE in Backstop.
 */
export const NORMALISED = ['warning: NOQUEUE: (Backstop) for warning: QUEUEID: (Postfix) before DATA/BDAT'];
