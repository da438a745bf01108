// DNS result vocabulary: every lookup answers with a union that keeps the outcomes apart,
// so that callers can never mistake a temporary failure for "no such name" (Postfix's
// DNS_RETRY vs DNS_NOTFOUND). Pure types; trusts nothing, talks to nothing.

/** Why a lookup failed temporarily: node's error code (or ETIMEOUT from our own timer). */
export interface DnsError {
  code: string;
  message: string;
}

/** The outcome of one query. `ttl` is in seconds. */
export type DnsResult<T> =
  | { status: 'ok'; records: T[]; ttl: number }
  /** NXDOMAIN: the name does not exist (also: a malformed name, never sent). */
  | { status: 'notFound' }
  /** NOERROR with no records of this type (NODATA). */
  | { status: 'noData' }
  /** SERVFAIL, REFUSED, timeout, unreachable server, or anything we do not know: try later. */
  | { status: 'tempFail'; error: DnsError };

export interface MxRecord {
  /** Lower case, without the trailing dot. */
  exchange: string;
  preference: number;
}

/** MX adds RFC 7505 null MX ("0 ."): the domain accepts no mail at all. */
export type MxResult = DnsResult<MxRecord> | { status: 'nullMx' };

/** Which address families to look up, as Postfix's inet_protocols. */
export type InetProtocols = 'all' | 'ipv4' | 'ipv6' | ReadonlyArray<'ipv4' | 'ipv6'>;

/**
 * Postfix's client name status codes (smtpd_peer.c): ok, temporary failure, permanent
 * failure (no usable PTR), forged (PTR name does not resolve back to the address).
 */
export type ClientNameStatus = 'ok' | 'temp' | 'perm' | 'forged';

export interface ClientName {
  /** Forward-confirmed name, or 'unknown': the `name` in `name[IP]`. */
  name: string;
  /** The PTR name without forward confirmation, or 'unknown' (reverse_client_name). */
  reverseName: string;
  /** For reject_unknown_client_hostname. */
  nameStatus: ClientNameStatus;
  /** For reject_unknown_reverse_client_hostname (never 'forged'). */
  reverseNameStatus: Exclude<ClientNameStatus, 'forged'>;
  /** True when `name` is 'unknown' because of a temporary failure (nameStatus 'temp'). */
  temporary: boolean;
  /** Postfix's warning text for the maillog, when the name was rejected. */
  warning?: string;
}

/** A DNSBL/RHSBL answer. A values are kept so callers can apply `=127.0.0.2` filters. */
export type RblResult =
  | { status: 'listed'; query: string; addresses: string[]; texts: string[]; ttl: number }
  /** NXDOMAIN/NODATA, or A values that the filter did not accept (kept in `addresses`). */
  | { status: 'notListed'; query: string; addresses: string[] }
  /**
   * The list answered with an error code in 127.255.255.0/24 (Spamhaus: "query refused",
   * "typing error", ...). Never a listing: treating it as one would reject everybody.
   */
  | { status: 'listError'; query: string; addresses: string[]; error: string }
  | { status: 'tempFail'; query: string; error: DnsError };
