// The open-relay battery's cases (docs/battery.md lists them with their sources). Each is one SMTP
// transaction against a Backstop that backs up exactly primary.test; the foreign destination is
// other.test (its MX is a sink on 127.0.0.55:25). `rcpt` is sent verbatim after "RCPT TO:".
// Sources: MAPS = relay-test.mail-abuse.org's probe list; DSBL = relaytest(1) from dsbltesters;
// RLY = rlytest(1); RFC = RFC 5321; PF = Postfix postconf(5) (allow_percent_hack, swap_bangpath,
// resolve_dequoted_address, allow_untrusted_routing) and smtpd_check.c's permit_mx_backup.

export interface RelayCase {
  id: string;
  rcpt: string;
  from?: string;
  helo?: string;
  source: string;
}

export const RELAY_CASES: RelayCase[] = [
  { id: 'plain', rcpt: '<x@other.test>', source: 'MAPS #1, RLY, DSBL' },
  { id: 'no-brackets', rcpt: 'x@other.test', source: 'DSBL (RCPT TO:listme@dsbl.org)' },
  { id: 'space-before-bracket', rcpt: ' <x@other.test>', source: 'RFC 5321 §4.1.1.3 (no space allowed; Postfix tolerates it)' },
  { id: 'mixed-case', rcpt: '<x@OtHeR.TeSt>', source: 'RFC 5321 §2.4 (domains are case-insensitive)' },
  { id: 'trailing-dot', rcpt: '<x@other.test.>', source: 'RFC 1034 absolute names; classic trailing-dot bypass' },
  { id: 'quoted-whole', rcpt: '<"x@other.test">', source: 'MAPS "Quote test", DSBL' },
  { id: 'quoted-whole-no-brackets', rcpt: '"x@other.test"', source: 'DSBL' },
  { id: 'quoted-local-our-domain', rcpt: '<"x@other.test"@primary.test>', source: 'DSBL; PF resolve_dequoted_address' },
  { id: 'quoted-percent', rcpt: '<"x%other.test"@primary.test>', source: 'DSBL ("listme%dsbl.org")' },
  { id: 'quoted-percent-bare', rcpt: '<"x%other.test">', source: 'DSBL' },
  { id: 'double-at', rcpt: '<x@other.test@primary.test>', source: 'DSBL; PF resolve_dequoted_address ("user@domain@domain")' },
  { id: 'double-at-foreign-last', rcpt: '<x@primary.test@other.test>', source: 'DSBL (reversed)' },
  { id: 'percent-hack', rcpt: '<x%other.test@primary.test>', source: 'DSBL, MAPS; PF allow_percent_hack' },
  { id: 'percent-hack-upper', rcpt: '<X%OTHER.TEST@PRIMARY.TEST>', source: 'percent hack + RFC 5321 §2.4 case' },
  { id: 'percent-hack-our-hostname', rcpt: '<x%other.test@mx2.backup.test>', source: 'DSBL (our own name as DOMAIN)' },
  { id: 'percent-hack-our-literal', rcpt: '<x%other.test@[127.0.0.1]>', source: 'DSBL ([ip address] as DOMAIN)' },
  { id: 'percent-double', rcpt: '<x%other.test%primary.test@primary.test>', source: 'nested percent hack (PF allow_percent_hack applies repeatedly)' },
  { id: 'bang-path', rcpt: '<other.test!x@primary.test>', source: 'DSBL, MAPS; PF swap_bangpath' },
  { id: 'bang-path-bare', rcpt: '<other.test!x>', source: 'DSBL; PF swap_bangpath' },
  { id: 'bang-path-our-literal', rcpt: '<other.test!x@[127.0.0.1]>', source: 'DSBL' },
  { id: 'bang-percent-mix', rcpt: '<other.test!x%primary.test@primary.test>', source: 'PF swap_bangpath + allow_percent_hack' },
  { id: 'source-route', rcpt: '<@primary.test:x@other.test>', source: 'RFC 5321 §4.1.1.3 / App. C (source routes), DSBL' },
  { id: 'source-route-our-hostname', rcpt: '<@mx2.backup.test:x@other.test>', source: 'RFC 5321 App. C, DSBL' },
  { id: 'source-route-literal', rcpt: '<@[127.0.0.1]:x@other.test>', source: 'RFC 5321 App. C' },
  { id: 'source-route-chain', rcpt: '<@primary.test,@mx2.backup.test:x@other.test>', source: 'RFC 5321 App. C (A-d-l list)' },
  { id: 'ip-literal-foreign', rcpt: '<x@[127.0.0.55]>', source: 'DSBL ([ip address]); RFC 5321 §4.1.3 address literals' },
  { id: 'ip-literal-ours', rcpt: '<x@[127.0.0.1]>', source: 'DSBL ([127.0.0.1]); RFC 5321 §4.1.3' },
  { id: 'ipv6-literal', rcpt: '<x@[IPv6:::1]>', source: 'RFC 5321 §4.1.3 IPv6 address literal' },
  { id: 'localhost', rcpt: '<x@localhost>', source: 'DSBL ("localhost" as DOMAIN)' },
  { id: 'our-hostname', rcpt: '<x@mx2.backup.test>', source: 'DSBL (our own name); we are not a final destination' },
  { id: 'suffix-trick', rcpt: '<x@primary.test.other.test>', source: 'parent-domain matching (PF parent_domain_matches_subdomains)' },
  { id: 'prefix-trick', rcpt: '<x@other.test.primary.test>', source: 'parent-domain matching: a subdomain of ours is not ours' },
  { id: 'unqualified', rcpt: '<x>', source: 'MAPS #4 (unqualified), RFC 5321 §4.1.1.3' },
  { id: 'unqualified-domain-like', rcpt: '<other.test>', source: 'unqualified address that looks like a domain (must not be routed to it)' },
  { id: 'unqualified-host-like', rcpt: '<mx.other.test>', source: 'unqualified address naming the foreign MX host' },
  { id: 'postmaster-foreign', rcpt: '<postmaster@other.test>', source: 'RFC 5321 §4.5.1 (postmaster is special only for us)' },
  { id: 'null-sender', rcpt: '<x@other.test>', from: '<>', source: 'MAPS #5, DSBL (MAIL FROM:<>)' },
  { id: 'postmaster-sender', rcpt: '<x@other.test>', from: '<postmaster>', source: 'DSBL (MAIL FROM:<postmaster>)' },
  { id: 'unqualified-sender', rcpt: '<x@other.test>', from: '<spamtest>', source: 'MAPS #4' },
  { id: 'our-hostname-sender', rcpt: '<x@other.test>', from: '<spamtest@mx2.backup.test>', helo: 'mx2.backup.test', source: 'MAPS #6 (our own name as sender and HELO)' },
  { id: 'localhost-sender', rcpt: '<x@other.test>', from: '<spamtest@localhost>', source: 'MAPS #3' },
  { id: 'backed-up-domain-sender', rcpt: '<x@other.test>', from: '<alice@primary.test>', source: 'sender in the domain we back up' },
  { id: 'literal-sender', rcpt: '<x@other.test>', from: '<spamtest@[127.0.0.1]>', helo: '[127.0.0.1]', source: 'DSBL' },
  { id: 'foreign-as-sender', rcpt: '<x@other.test>', from: '<x@other.test>', source: 'MAPS #1 (sender = recipient)' },
  { id: 'backslash-at', rcpt: '<x\\@other.test@primary.test>', source: 'RFC 5321 §4.1.2 quoted-pair outside quotes' },
  { id: 'quoted-backslash-at', rcpt: '<"x\\@other.test"@primary.test>', source: 'RFC 5321 §4.1.2 quoted-pair' },
  { id: 'utf8-dot', rcpt: '<x@other\u3002test>', source: 'IDNA ideographic full stop (U+3002) as a dot' },
  { id: 'nul-in-domain', rcpt: '<x@primary.test\u0000.other.test>', source: 'NUL truncation (C string) trick' },
];

/** The positive controls: mail for the backed-up domain must still be accepted and go to the primary. */
export const CONTROL_RCPTS = ['<alice@primary.test>', '<bob@PRIMARY.TEST>', '<carol@primary.test>'];
