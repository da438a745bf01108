// What an outbound SMTP session is told: its Postfix timeouts, TLS level, HELO name, bind address
// and line limits. DEFAULT_TIMEOUTS is not a second copy of Postfix's defaults: it is read from
// the parameter registry (what `postconf -d` prints) through the same typed readers as main.cf,
// so the two cannot drift. Trusts the config module's registry and validation.

import { defaultConfig, type ParamReader } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { TlsaRecord } from '../dns/index.js';

/** Timeouts in seconds, named as Postfix names them. */
export interface SmtpTimeouts {
  smtp_connect_timeout: number;
  smtp_helo_timeout: number;
  smtp_starttls_timeout: number;
  smtp_mail_timeout: number;
  smtp_rcpt_timeout: number;
  smtp_data_init_timeout: number;
  smtp_data_xfer_timeout: number;
  smtp_data_done_timeout: number;
  smtp_rset_timeout: number;
  smtp_quit_timeout: number;
}

/** The smtp_*_timeout parameters as `p` has them (main.cf, or the registry's defaults). */
export function smtpTimeoutsFrom(p: ParamReader): SmtpTimeouts {
  return {
    smtp_connect_timeout: p.time('smtp_connect_timeout'),
    smtp_helo_timeout: p.time('smtp_helo_timeout'),
    smtp_starttls_timeout: p.time('smtp_starttls_timeout'),
    smtp_mail_timeout: p.time('smtp_mail_timeout'),
    smtp_rcpt_timeout: p.time('smtp_rcpt_timeout'),
    smtp_data_init_timeout: p.time('smtp_data_init_timeout'),
    smtp_data_xfer_timeout: p.time('smtp_data_xfer_timeout'),
    smtp_data_done_timeout: p.time('smtp_data_done_timeout'),
    smtp_rset_timeout: p.time('smtp_rset_timeout'),
    smtp_quit_timeout: p.time('smtp_quit_timeout'),
  };
}

/** The registry's defaults (`postconf -d`), for sessions opened without main.cf. */
export const DEFAULT_TIMEOUTS: Readonly<SmtpTimeouts> = smtpTimeoutsFrom(defaultConfig());

export type TlsLevel = 'none' | 'may' | 'encrypt' | 'verify' | 'secure';

/**
 * The TLS one session must have, after policy maps, DANE and MTA-STS were consulted
 * (tls-session.ts). `dane` authenticates with `tlsa` alone; `verify`/`secure` need a CA-trusted
 * certificate that matches `match`.
 */
export interface SessionTls {
  level: TlsLevel | 'dane';
  /** Certificate name patterns (tls-policy.ts certMatches) for verify/secure. */
  match: string[];
  /** The next-hop domain, for the `nexthop` and `dot-nexthop` patterns. */
  nexthop: string;
  /** Postfix protocol list, e.g. ">=TLSv1". */
  protocols: string;
  tlsa?: TlsaRecord[];
  /** The TLSA base domain (the server's name). */
  daneBase?: string;
  /** At `may`: a failed handshake is retried in plain text (Postfix's PLAINTEXT_FALLBACK_OK). */
  plaintextFallback?: boolean;
  /** Why the level is what it is, appended to deferral texts (e.g. "MTA-STS policy"). */
  because?: string;
}

export interface SessionOptions {
  /** smtp_helo_name (default $myhostname). */
  heloName: string;
  /** smtp_tls_security_level without policy maps (none when absent). */
  tlsLevel?: TlsLevel;
  /** The resolved TLS of this session; when set, tlsLevel is not used. */
  tls?: SessionTls;
  /** smtp_tls_CAfile contents or path-loaded PEM, for verify/secure. */
  tlsCa?: string | Buffer;
  timeouts?: Partial<SmtpTimeouts>;
  /** smtp_bind_address. */
  bindAddress?: string;
  logger?: Logger;
  /** Longest reply line kept (longer lines are truncated), Postfix's line_length_limit. */
  lineLengthLimit?: number;
  /** smtp_send_xforward_command: XFORWARD the original client when the server offers it. */
  xforward?: boolean;
  /** backstop_smtp_send_xclient: XCLIENT the original client when the server offers it. */
  xclient?: boolean;
  /** smtp_line_length_limit: longer message lines are broken with CRLF SPACE (default 998; 0 = never). */
  smtpLineLengthLimit?: number;
}
