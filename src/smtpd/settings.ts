// The smtpd parameters in force for one listener, read once from the configuration (main.cf plus
// that listener's master.cf -o overrides) into a plain typed object. A session keeps the object
// it started with, so a reload never changes the rules under a running session.
// Trusts the config module for parsing and bounds; reads TLS key/certificate files here.

import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { ParamReader } from '../config/index.js';
import { protocolRange, type NodeTls } from '../mail/index.js';
import { compileCommandList, type CommandList } from './nonsmtp.js';

export type BareNewlineMode = 'normalize' | 'yes' | 'reject' | 'note' | 'no';
export type TlsLevel = 'none' | 'may' | 'encrypt';

export interface SmtpdSettings {
  myhostname: string;
  /** smtpd_banner, expanded: the text after `220 `. */
  banner: string;
  mailName: string;
  /** Seconds. */
  timeout: number;
  starttlsTimeout: number;
  recipientLimit: number;
  connectionCountLimit: number;
  connectionRateLimit: number;
  /** Seconds (anvil_rate_time_unit). */
  rateTimeUnit: number;
  hardErrorLimit: number;
  softErrorLimit: number;
  /** Seconds. */
  errorSleepTime: number;
  junkCommandLimit: number;
  lineLengthLimit: number;
  messageSizeLimit: number;
  forbidBareNewline: BareNewlineMode;
  forbidUnauthPipelining: boolean;
  disableVrfy: boolean;
  heloRequired: boolean;
  discardEhloKeywords: Set<string>;
  /** smtpd_forbidden_commands, compiled. */
  forbiddenCommands: CommandList;
  smtputf8: boolean;
  /** strict_smtputf8: refuse a non-ASCII address without SMTPUTF8 (Postfix's default: no). */
  strictSmtputf8: boolean;
  tls: {
    level: TlsLevel;
    key?: Buffer;
    cert?: Buffer;
    authOnly: boolean;
    /** smtpd_tls_protocols as Node's range (default >=TLSv1.2: TLS 1.2 or newer). */
    minVersion: NodeTls;
    maxVersion: NodeTls;
    /** smtpd_tls_received_header. */
    receivedHeader: boolean;
  };
  sasl: { enabled: boolean; type: string; path: string };
  peernameLookup: boolean;
}

function tlsLevel(cfg: ParamReader): TlsLevel {
  const v = cfg.str('smtpd_tls_security_level');
  if (v === 'may' || v === 'encrypt' || v === 'none') return v;
  // Empty: Postfix falls back to the legacy smtpd_use_tls (off). Backstop offers STARTTLS as
  // soon as a certificate is configured — nobody configures one to leave it unused
  // (docs/configuration.md, deliberate differences).
  return cfg.str('smtpd_tls_cert_file') ? 'may' : 'none';
}

function protocols(cfg: ParamReader): { minVersion: NodeTls; maxVersion: NodeTls } {
  try {
    return protocolRange(cfg.str('smtpd_tls_protocols'));
  } catch (err) {
    throw new Error(`parameter smtpd_tls_protocols: ${(err as Error).message}`);
  }
}

/** Read a file named by a parameter; relative names resolve against the configuration directory. */
function readParamFile(cfg: ParamReader & { dir?: string }, name: string): Buffer | undefined {
  const file = cfg.str(name);
  if (!file) return undefined;
  const path = isAbsolute(file) || !cfg.dir ? file : join(cfg.dir, file);
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`parameter ${name}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** The Dovecot auth socket: `inet:host:port`, `unix:path` or a path relative to queue_directory. */
export function saslSocketPath(cfg: ParamReader): string {
  const p = cfg.str('smtpd_sasl_path');
  if (p.startsWith('inet:') || p.startsWith('unix:') || isAbsolute(p)) return p;
  return join(cfg.str('queue_directory'), p);
}

export function readSettings(cfg: ParamReader & { dir?: string }): SmtpdSettings {
  let level = tlsLevel(cfg);
  const key = level !== 'none' ? readParamFile(cfg, 'smtpd_tls_key_file') : undefined;
  const cert = level !== 'none' ? readParamFile(cfg, 'smtpd_tls_cert_file') : undefined;
  if (level !== 'none' && (!key || !cert)) {
    if (level === 'encrypt') throw new Error('smtpd_tls_security_level = encrypt needs smtpd_tls_cert_file and smtpd_tls_key_file');
    level = 'none';
  }
  return {
    myhostname: cfg.str('myhostname'),
    banner: cfg.str('smtpd_banner'),
    mailName: cfg.str('mail_name'),
    timeout: cfg.time('smtpd_timeout'),
    starttlsTimeout: cfg.time('smtpd_starttls_timeout'),
    recipientLimit: cfg.int('smtpd_recipient_limit'),
    connectionCountLimit: cfg.int('smtpd_client_connection_count_limit'),
    connectionRateLimit: cfg.int('smtpd_client_connection_rate_limit'),
    rateTimeUnit: cfg.time('anvil_rate_time_unit'),
    hardErrorLimit: cfg.int('smtpd_hard_error_limit'),
    softErrorLimit: cfg.int('smtpd_soft_error_limit'),
    errorSleepTime: cfg.time('smtpd_error_sleep_time'),
    junkCommandLimit: cfg.int('smtpd_junk_command_limit'),
    lineLengthLimit: cfg.int('line_length_limit'),
    messageSizeLimit: cfg.size('message_size_limit'),
    forbidBareNewline: cfg.str('smtpd_forbid_bare_newline') as BareNewlineMode,
    forbidUnauthPipelining: cfg.bool('smtpd_forbid_unauth_pipelining'),
    disableVrfy: cfg.bool('disable_vrfy_command'),
    heloRequired: cfg.bool('smtpd_helo_required'),
    discardEhloKeywords: new Set(cfg.list('smtpd_discard_ehlo_keywords').map((k) => k.toUpperCase())),
    forbiddenCommands: compileCommandList(cfg.str('smtpd_forbidden_commands')),
    smtputf8: cfg.bool('smtputf8_enable'),
    strictSmtputf8: cfg.bool('strict_smtputf8'),
    tls: { level, key, cert, authOnly: cfg.bool('smtpd_tls_auth_only'), ...protocols(cfg), receivedHeader: cfg.bool('smtpd_tls_received_header') },
    sasl: { enabled: cfg.bool('smtpd_sasl_auth_enable'), type: cfg.str('smtpd_sasl_type'), path: saslSocketPath(cfg) },
    peernameLookup: cfg.bool('smtpd_peername_lookup'),
  };
}
