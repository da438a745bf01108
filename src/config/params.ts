// The registry of every parameter Backstop reads: Postfix's name, default (as `postconf -d`
// prints it in Postfix 3.7 at compatibility level 3.6), type, unit and bounds — the way Postfix
// daemons list VAR_…, DEF_…, min, max. `postconf -d` prints from this list; validation checks
// main.cf against it. Parameters Postfix does not have start with `backstop_`.
// Dynamic defaults (host name, networks) are computed once from this machine, as Postfix does.

import { hostname, networkInterfaces } from 'node:os';
import type { ParamDef, ParamType } from './types.js';

type Opts = Partial<Pick<ParamDef, 'unit' | 'min' | 'max' | 'oneOf'>>;

const defs: ParamDef[] = [];

function def(module: string, type: ParamType, name: string, dflt: string, opts: Opts = {}): void {
  let unit = opts.unit;
  if (type === 'time' && !unit) {
    // Postfix takes a bare number's unit from the default value's suffix ("7d" → days).
    const m = /([smhdw])$/.exec(dflt);
    unit = (m ? m[1] : 's') as ParamDef['unit'];
  }
  defs.push({ name, default: dflt, type, module, ...opts, unit });
}

const str = (m: string, n: string, d: string, o?: Opts) => def(m, 'string', n, d, o);
const int = (m: string, n: string, d: string, o: Opts = {}) => def(m, 'int', n, d, { min: 0, ...o });
const bool = (m: string, n: string, d: string) => def(m, 'bool', n, d);
const time = (m: string, n: string, d: string, o: Opts = {}) => def(m, 'time', n, d, { min: 0, ...o });
const size = (m: string, n: string, d: string) => def(m, 'size', n, d);
const list = (m: string, n: string, d: string) => def(m, 'list', n, d);
const code = (m: string, n: string, d: string) => def(m, 'code', n, d);
const restr = (m: string, n: string, d: string) => def(m, 'restrictions', n, d);
const maps = (m: string, n: string, d: string) => def(m, 'maps', n, d);

function fqdn(): string {
  const h = hostname();
  return h.includes('.') ? h : `${h}.localdomain`;
}

function myNetworks(): string {
  // mynetworks_style = host (compatibility level 2 and later): this host's own addresses.
  const nets = new Set<string>(['127.0.0.0/8', '[::1]/128']);
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      nets.add(a.family === 'IPv4' ? `${a.address}/32` : `[${a.address.split('%')[0]}]/128`);
    }
  }
  return [...nets].join(' ');
}

// --- global: addresses, domains, files ---------------------------------------------------
const G = 'global';
str(G, 'myhostname', fqdn());
str(G, 'mydomain', fqdn().split('.').slice(1).join('.') || 'localdomain');
str(G, 'myorigin', '$myhostname');
list(G, 'mydestination', '$myhostname, localhost.$mydomain, localhost');
list(G, 'inet_interfaces', 'all');
str(G, 'inet_protocols', 'all', { oneOf: ['all', 'ipv4', 'ipv6', 'ipv4, ipv6', 'ipv6, ipv4'] });
list(G, 'proxy_interfaces', '');
list(G, 'mynetworks', myNetworks());
str(G, 'mynetworks_style', 'host', { oneOf: ['host', 'subnet', 'class'] });
list(G, 'relay_domains', '');
str(G, 'queue_directory', '/var/spool/backstop');
str(G, 'data_directory', '/var/lib/backstop');
// The process model (master(8)): whom the workers run as when the master is root, how long a
// service that fails at start-up waits before it is started again.
str(G, 'mail_owner', 'postfix');
time(G, 'service_throttle_time', '60s', { min: 1 });
str(G, 'process_id_directory', 'pid');
str(G, 'maillog_file', '');
str(G, 'syslog_name', 'backstop');
str(G, 'mail_name', 'Backstop');
str(G, 'compatibility_level', '3.6');
list(G, 'parent_domain_matches_subdomains',
  'debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,qmqpd_authorized_clients,relay_domains,smtpd_access_maps');
str(G, 'double_bounce_sender', 'double-bounce');
str(G, '2bounce_notice_recipient', 'postmaster');
str(G, 'bounce_notice_recipient', 'postmaster');
str(G, 'delay_notice_recipient', 'postmaster');
str(G, 'error_notice_recipient', 'postmaster');
list(G, 'notify_classes', 'resource, software');
bool(G, 'allow_untrusted_routing', 'no');
bool(G, 'swap_bangpath', 'yes');
bool(G, 'allow_percent_hack', 'yes');
str(G, 'recipient_delimiter', '');
str(G, 'default_database_type', 'hash');
int(G, 'line_length_limit', '2048', { min: 1 });
size(G, 'message_size_limit', '10240000');
size(G, 'header_size_limit', '102400');
int(G, 'hopcount_limit', '50', { min: 1 });
bool(G, 'smtputf8_enable', 'yes');
bool(G, 'strict_smtputf8', 'no');
bool(G, 'strict_rfc821_envelopes', 'no');
str(G, 'stress', '');
time(G, 'delay_logging_resolution_limit', '2', { unit: 's', max: 6 });

// --- smtpd: protocol, limits, TLS, SASL ---------------------------------------------------
const S = 'smtpd';
str(S, 'smtpd_banner', '$myhostname ESMTP $mail_name');
time(S, 'smtpd_timeout', '${stress?{10}:{300}}s', { unit: 's', min: 1 });
time(S, 'smtpd_starttls_timeout', '${stress?{10}:{300}}s', { unit: 's', min: 1 });
bool(S, 'smtpd_per_record_deadline', '${stress?{yes}:{no}}');
int(S, 'smtpd_recipient_limit', '1000', { min: 1 });
int(S, 'smtpd_client_connection_count_limit', '50');
int(S, 'smtpd_client_connection_rate_limit', '0');
int(S, 'smtpd_client_message_rate_limit', '0');
int(S, 'smtpd_client_recipient_rate_limit', '0');
time(S, 'anvil_rate_time_unit', '60s', { min: 1 });
list(S, 'smtpd_client_event_limit_exceptions', '${smtpd_client_connection_limit_exceptions:$mynetworks}');
int(S, 'smtpd_hard_error_limit', '${stress?{1}:{20}}', { min: 1 });
int(S, 'smtpd_soft_error_limit', '10');
time(S, 'smtpd_error_sleep_time', '1s');
int(S, 'smtpd_junk_command_limit', '${stress?{1}:{100}}', { min: 1 });
str(S, 'smtpd_forbid_bare_newline', 'normalize', { oneOf: ['normalize', 'yes', 'reject', 'note', 'no'] });
list(S, 'smtpd_forbid_bare_newline_exclusions', '$mynetworks');
bool(S, 'smtpd_forbid_unauth_pipelining', 'yes');
bool(S, 'disable_vrfy_command', 'no');
bool(S, 'smtpd_helo_required', 'no');
bool(S, 'smtpd_delay_reject', 'yes');
bool(S, 'smtpd_peername_lookup', 'yes');
list(S, 'smtpd_discard_ehlo_keywords', '');
str(S, 'smtpd_forbidden_commands', 'CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}}');
str(S, 'smtpd_reject_footer', '');
str(S, 'smtpd_null_access_lookup_key', '<>');
str(S, 'smtpd_tls_security_level', '', { oneOf: ['', 'none', 'may', 'encrypt'] });
str(S, 'smtpd_tls_cert_file', '');
str(S, 'smtpd_tls_key_file', '$smtpd_tls_cert_file');
str(S, 'smtpd_tls_CAfile', '');
// Deliberate difference: TLS 1.2 or newer (Postfix 3.7: >=TLSv1); docs/configuration.md.
str(S, 'smtpd_tls_protocols', '>=TLSv1.2');
int(S, 'smtpd_tls_loglevel', '0');
bool(S, 'smtpd_tls_received_header', 'no');
bool(S, 'smtpd_tls_auth_only', 'no');
bool(S, 'smtpd_sasl_auth_enable', 'no');
str(S, 'smtpd_sasl_type', 'dovecot', { oneOf: ['dovecot', 'cyrus'] });
str(S, 'smtpd_sasl_path', 'private/auth');
str(S, 'smtpd_sasl_local_domain', '');
bool(S, 'smtpd_sasl_authenticated_header', 'no');

// --- smtpd restrictions and their replies ----------------------------------------------------
const R = 'restrictions';
restr(R, 'smtpd_client_restrictions', '');
restr(R, 'smtpd_helo_restrictions', '');
restr(R, 'smtpd_sender_restrictions', '');
restr(R, 'smtpd_relay_restrictions', 'permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination');
restr(R, 'smtpd_recipient_restrictions', '');
restr(R, 'smtpd_data_restrictions', '');
restr(R, 'smtpd_end_of_data_restrictions', '');
restr(R, 'smtpd_etrn_restrictions', '');
list(R, 'smtpd_restriction_classes', '');
bool(R, 'smtpd_reject_unlisted_recipient', 'yes');
bool(R, 'smtpd_reject_unlisted_sender', 'no');
code(R, 'access_map_reject_code', '554');
code(R, 'access_map_defer_code', '450');
str(R, 'default_rbl_reply', '$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using $rbl_domain${rbl_reason?; $rbl_reason}');
code(R, 'maps_rbl_reject_code', '554');
maps(R, 'rbl_reply_maps', '');
code(R, 'relay_domains_reject_code', '554');
code(R, 'reject_code', '554');
code(R, 'defer_code', '450');
code(R, 'unknown_address_reject_code', '450');
str(R, 'unknown_address_tempfail_action', '$reject_tempfail_action');
code(R, 'unknown_hostname_reject_code', '450');
code(R, 'unknown_client_reject_code', '450');
str(R, 'unknown_helo_hostname_tempfail_action', '$reject_tempfail_action');
code(R, 'invalid_hostname_reject_code', '501');
code(R, 'non_fqdn_reject_code', '504');
code(R, 'unverified_recipient_reject_code', '450');
code(R, 'unverified_recipient_defer_code', '450');
str(R, 'unverified_recipient_tempfail_action', '$reject_tempfail_action');
str(R, 'unverified_recipient_reject_reason', '');
code(R, 'unverified_sender_reject_code', '450');
code(R, 'unverified_sender_defer_code', '450');
str(R, 'unverified_sender_tempfail_action', '$reject_tempfail_action');
str(R, 'unverified_sender_reject_reason', '');
str(R, 'reject_tempfail_action', 'defer_if_permit', { oneOf: ['defer_if_permit', 'defer', 'defer_if_reject', 'dunno'] });
code(R, 'unknown_relay_recipient_reject_code', '550');
code(R, 'unknown_local_recipient_reject_code', '550');
maps(R, 'relay_recipient_maps', '');
code(R, 'plaintext_reject_code', '450');
list(R, 'permit_mx_backup_networks', '');

// --- policy delegation ------------------------------------------------------------------------
const P = 'policy';
time(P, 'smtpd_policy_service_timeout', '100s', { min: 1 });
time(P, 'smtpd_policy_service_max_idle', '300s', { min: 1 });
time(P, 'smtpd_policy_service_max_ttl', '1000s', { min: 1 });
str(P, 'smtpd_policy_service_default_action', '451 4.3.5 Server configuration problem');
int(P, 'smtpd_policy_service_try_limit', '2', { min: 1 });
time(P, 'smtpd_policy_service_retry_delay', '1s', { min: 1 });
int(P, 'smtpd_policy_service_request_limit', '0');
str(P, 'smtpd_policy_service_policy_context', '');
time(P, 'policy_time_limit', '1000s', { min: 1 });

// --- address verification -------------------------------------------------------------------
const V = 'verify';
str(V, 'address_verify_map', 'btree:$data_directory/verify_cache');
str(V, 'address_verify_sender', '$double_bounce_sender');
time(V, 'address_verify_sender_ttl', '0s');
time(V, 'address_verify_positive_refresh_time', '7d', { min: 1 });
time(V, 'address_verify_positive_expire_time', '31d', { min: 1 });
time(V, 'address_verify_negative_refresh_time', '3h', { min: 1 });
time(V, 'address_verify_negative_expire_time', '3d', { min: 1 });
bool(V, 'address_verify_negative_cache', 'yes');
int(V, 'address_verify_poll_count', '${stress?{1}:{3}}', { min: 1 });
time(V, 'address_verify_poll_delay', '3s', { min: 1 });
time(V, 'address_verify_cache_cleanup_interval', '12h');
str(V, 'address_verify_relayhost', '$relayhost');
maps(V, 'address_verify_transport_maps', '$transport_maps');
int(V, 'address_verify_pending_request_limit', '5000', { min: 1 });

// --- queue and queue manager ------------------------------------------------------------------
const Q = 'qmgr';
time(Q, 'maximal_queue_lifetime', '5d');
time(Q, 'bounce_queue_lifetime', '5d');
time(Q, 'minimal_backoff_time', '300s', { min: 1 });
time(Q, 'maximal_backoff_time', '4000s', { min: 1 });
time(Q, 'queue_run_delay', '300s', { min: 1 });
time(Q, 'delay_warning_time', '0h');
int(Q, 'default_destination_concurrency_limit', '20', { min: 1 });
int(Q, 'default_destination_recipient_limit', '50', { min: 1 });
int(Q, 'initial_destination_concurrency', '5', { min: 1 });
int(Q, 'default_destination_concurrency_failed_cohort_limit', '1', { min: 1 });
time(Q, 'default_destination_rate_delay', '0s');
int(Q, 'qmgr_message_active_limit', '20000', { min: 1 });
list(Q, 'fast_flush_domains', '$relay_domains');
bool(Q, 'enable_long_queue_ids', 'no');
int(Q, 'smtp_destination_concurrency_limit', '$default_destination_concurrency_limit', { min: 1 });
int(Q, 'smtp_destination_recipient_limit', '$default_destination_recipient_limit', { min: 1 });

// --- SMTP delivery client -----------------------------------------------------------------------
const C = 'smtp';
str(C, 'relayhost', '');
maps(C, 'transport_maps', '');
str(C, 'default_transport', 'smtp');
str(C, 'relay_transport', 'relay');
str(C, 'best_mx_transport', '');
list(C, 'smtp_fallback_relay', '$fallback_relay');
list(C, 'fallback_relay', '');
time(C, 'smtp_connect_timeout', '30s');
time(C, 'smtp_starttls_timeout', '300s', { min: 1 });
time(C, 'smtp_helo_timeout', '300s', { min: 1 });
time(C, 'smtp_mail_timeout', '300s', { min: 1 });
time(C, 'smtp_rcpt_timeout', '300s', { min: 1 });
time(C, 'smtp_data_init_timeout', '120s', { min: 1 });
time(C, 'smtp_data_xfer_timeout', '180s', { min: 1 });
time(C, 'smtp_data_done_timeout', '600s', { min: 1 });
time(C, 'smtp_quit_timeout', '300s', { min: 1 });
time(C, 'smtp_rset_timeout', '20s', { min: 1 });
int(C, 'smtp_mx_address_limit', '5');
int(C, 'smtp_mx_session_limit', '2');
bool(C, 'smtp_randomize_addresses', 'yes');
str(C, 'smtp_address_preference', 'any', { oneOf: ['any', 'ipv4', 'ipv6'] });
// Deliberate difference: `may` (opportunistic TLS) where Postfix 3.7's built-in default is empty
// (none) — what Debian's and most distributions' shipped main.cf set (docs/configuration.md).
str(C, 'smtp_tls_security_level', 'may', { oneOf: ['', 'none', 'may', 'encrypt', 'dane', 'dane-only', 'verify', 'secure'] });
maps(C, 'smtp_tls_policy_maps', '');
str(C, 'smtp_tls_protocols', '>=TLSv1');
str(C, 'smtp_tls_mandatory_protocols', '>=TLSv1');
str(C, 'smtp_tls_verify_cert_match', 'hostname');
str(C, 'smtp_tls_secure_cert_match', 'nexthop, dot-nexthop');
str(C, 'smtp_dns_support_level', '', { oneOf: ['', 'disabled', 'enabled', 'dnssec'] });
bool(C, 'smtp_send_xforward_command', 'no');
str(C, 'smtp_tls_CAfile', '');
str(C, 'smtp_tls_cert_file', '');
str(C, 'smtp_tls_key_file', '$smtp_tls_cert_file');
int(C, 'smtp_tls_loglevel', '0');
str(C, 'smtp_helo_name', '$myhostname');
time(C, 'smtp_connection_cache_time_limit', '2s', { min: 1 });
time(C, 'smtp_connection_reuse_time_limit', '300s', { min: 1 });
bool(C, 'smtp_skip_5xx_greeting', 'yes');
int(C, 'smtp_connection_reuse_count_limit', '0');
str(C, 'smtp_bind_address', '');
int(C, 'smtp_line_length_limit', '998');

// --- bounces ------------------------------------------------------------------------------------------
size('bounce', 'bounce_size_limit', '50000');

// --- Backstop's own parameters ------------------------------------------------------------------------
const B = 'backstop';
list(B, 'backstop_dns_servers', '');
time(B, 'backstop_dns_timeout', '10s', { min: 1 });
time(B, 'backstop_destination_probe_interval', '1s', { min: 1 });
bool(B, 'backstop_destination_watch', 'yes');
bool(B, 'backstop_verify_reprobe_on_return', 'yes');
str(B, 'backstop_verify_sync_map', '');
time(B, 'backstop_verify_sync_interval', '1h', { min: 1 });
int(B, 'backstop_verify_probe_concurrency', '20', { min: 1 });
// The process model: N smtpd worker processes (0: one per core, at most master.cf's process
// limit) and one queue manager process; `yes` runs everything in the master instead.
// Outbound trust (docs/delivery.md, TLS): MTA-STS policies (RFC 8461) of recipient domains, and
// XCLIENT (the original client for the primary's own restrictions) when the primary offers it.
bool(B, 'backstop_smtp_mta_sts', 'yes');
bool(B, 'backstop_smtp_send_xclient', 'no');
int(B, 'backstop_smtpd_workers', '0', { max: 256 });
bool(B, 'backstop_single_process', 'no');
// Delivery agents (docs/process-model.md): threads of the queue manager's process that make the
// deliveries, as Postfix's smtp(8) processes do (0: none, the queue manager delivers itself — on
// 2 cores the threads cost more CPU than they save: bench/qmgr-drain.ts); each leaves after
// max_idle without work, as Postfix's daemons do.
int(B, 'backstop_delivery_agents', '0', { max: 64 });
time(G, 'max_idle', '100s', { min: 1 });
// Operating it (docs/operating.md): the master's HTTP listener for /metrics, the dashboard and its
// API (empty: off), and the file holding the dashboard's action token (empty: read-only).
str(B, 'backstop_http_listen', '127.0.0.1:9025');
str(B, 'backstop_http_action_token_file', '');
// Queue file recycling (docs/queue-format.md): removed queue files kept emptied in
// queue_directory/recycle/ for new mail, so that no new inode is allocated per message (0: unlink).
int(B, 'backstop_queue_file_recycle_limit', '10000', { max: 1000000 });
// The queue store (docs/cluster.md): `file` (queue_directory, as Postfix) or postgres:CONFIG_FILE.
str(B, 'backstop_queue_store', 'file');
// With postgres: how long a node's claim on a message lasts unless renewed (every third of it):
// a node that dies gives its messages to the others after at most this long.
time(B, 'backstop_queue_lease_time', '60s', { min: 1 });
str(G, 'maillog_file_rotate_suffix', '%Y%m%d-%H%M%S');

defs.sort((a, b) => a.name.localeCompare(b.name));

export const PARAMS: ReadonlyMap<string, ParamDef> = new Map(defs.map((d) => [d.name, d]));

export function paramDef(name: string): ParamDef | undefined {
  return PARAMS.get(name);
}
