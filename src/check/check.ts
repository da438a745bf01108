// The configuration check, like `postfix check`: load everything — main.cf, master.cf, every
// restriction list (each table opened, each DNS list filter and policy address parsed) and every
// lookup table parameter — and report problems as diagnostics (`error:`/`warning: FILE, line N:
// ...`); then lint the backup-MX traps no MTA warns about (lintBackupMx). `backstop check` prints
// these; `backstop start` and a reload refuse exactly what this calls an error (validate.ts).
// Reads files and opens tables; never talks to the network.

import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Config, formatDiagnostic, PARAMS, validateConfig, type Diagnostic, type LoadedConfig } from '../config/index.js';
import { Resolver } from '../dns/index.js';
import { Maillog } from '../log/index.js';
import { parsePolicySpec, parseEndpoint } from '../policy/index.js';
import { createRestrictionEngine, MatchList, parseElements, restrictionValidator, RESTRICTIONS, type ParsedElement } from '../smtpd/check/index.js';
import { openTable, TABLE_TYPES } from '../tables/index.js';
import { checkVerifyStoreFile } from '../verify/index.js';
import { isLoopback, loadActionAuth, parseListen } from '../http/index.js';
import { lintCertificate, lintOutboundTls } from './tls.js';
import { loadPgConfig, parseQueueStore } from '../queue/pg/index.js';

const REJECTS = Object.entries(RESTRICTIONS).filter(([, d]) => d.countsAsReject).map(([n]) => n);
const VERIFY_CHECKS = new Set(['reject_unverified_recipient', 'reject_unlisted_recipient']);

/** Line of an element inside a (possibly multi-line) parameter value, for messages. */
function elementLine(config: Config, param: string, needle: string, fileCache: Map<string, string[]>): { file: string; line: number } {
  const o = config.origin(param);
  if (!o) return { file: '', line: 0 };
  let lines = fileCache.get(o.file);
  if (!lines) {
    try { lines = readFileSync(o.file, 'utf8').split(/\r?\n/); } catch { lines = []; }
    fileCache.set(o.file, lines);
  }
  for (let i = o.line - 1; i < lines.length; i++) {
    if (i > o.line - 1 && lines[i] !== '' && !/^\s/.test(lines[i]) && !/^\s*#/.test(lines[i])) break;
    if (/^\s*#/.test(lines[i])) continue;
    if (new RegExp(`(^|[\\s,=])${needle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[\\s,])`).test(lines[i])) return { file: o.file, line: i + 1 };
  }
  return o;
}

function parsed(config: Config, param: string): ParsedElement[] {
  try {
    return parseElements(config.list(param), new Set(config.list('smtpd_restriction_classes')));
  } catch {
    return []; // validateConfig reports the parse error
  }
}

/** Index of the first element that can never be passed: `permit`, or the mx-backup/auth + reject_unauth pair. */
function unreachableFrom(list: ParsedElement[], rcptList: boolean): { index: number; reason: string } | undefined {
  let authPermit: string | undefined;
  for (let i = 0; i < list.length; i++) {
    const n = list[i].name;
    if (RESTRICTIONS[n]?.alwaysPermits && i < list.length - 1 && !(i > 0 && list[i - 1].name === 'warn_if_reject')) {
      return { index: i + 1, reason: `"${n}" before it permits every request` };
    }
    if (rcptList && (n === 'permit_mx_backup' || n === 'permit_auth_destination')) authPermit ??= n;
    if (rcptList && authPermit && (n === 'reject_unauth_destination' || n === 'defer_unauth_destination') && i < list.length - 1) {
      return { index: i + 1, reason: `"${authPermit}" has already permitted every authorized destination and "${n}" rejects all others` };
    }
  }
  return undefined;
}

/** The backup-MX lints. Warnings only, except a configuration that cannot receive mail. */
export function lintBackupMx(config: Config, where = ''): Diagnostic[] {
  const out: Diagnostic[] = [];
  const files = new Map<string, string[]>();
  const at = (param: string, needle?: string): { file: string; line: number } => {
    const o = needle ? elementLine(config, param, needle, files) : config.origin(param);
    return o && o.file ? o : { file: where || 'main.cf', line: 0 };
  };
  const warn = (param: string, needle: string | undefined, message: string) => out.push({ severity: 'warning', ...at(param, needle), message });
  const relay = parsed(config, 'smtpd_relay_restrictions');
  const rcpt = parsed(config, 'smtpd_recipient_restrictions');
  const has = (l: ParsedElement[], n: string) => l.some((e) => e.name === n);

  // 1. The seed's trap: permit_mx_backup in recipient restrictions, relay restrictions end in reject_unauth_destination without it.
  const relayRejects = relay.find((e) => e.name === 'reject_unauth_destination' || e.name === 'defer_unauth_destination');
  if (has(rcpt, 'permit_mx_backup') && relayRejects && !has(relay, 'permit_mx_backup')) {
    warn('smtpd_relay_restrictions', relayRejects.name,
      `smtpd_relay_restrictions has ${relayRejects.name} but no permit_mx_backup, while smtpd_recipient_restrictions relies on permit_mx_backup: relay restrictions run first, so every backup-MX message gets "Relay access denied"; add permit_mx_backup before ${relayRejects.name} in smtpd_relay_restrictions`);
  }

  // 2. Unreachable restrictions.
  const lists = ['smtpd_client_restrictions', 'smtpd_helo_restrictions', 'smtpd_sender_restrictions', 'smtpd_relay_restrictions',
    'smtpd_recipient_restrictions', 'smtpd_data_restrictions', 'smtpd_end_of_data_restrictions', 'smtpd_etrn_restrictions',
    ...config.list('smtpd_restriction_classes')];
  for (const param of lists) {
    const l = parsed(config, param);
    const u = unreachableFrom(l, param === 'smtpd_recipient_restrictions' || param === 'smtpd_relay_restrictions');
    if (!u) continue;
    for (const e of l.slice(u.index)) {
      warn(param, e.arg ?? e.name, `${param}: restriction "${e.name}${e.arg ? ' ' + e.arg : ''}" is never reached: ${u.reason}`);
    }
  }

  // 3. permit_mx_backup without permit_mx_backup_networks.
  const mxList = has(relay, 'permit_mx_backup') ? 'smtpd_relay_restrictions' : has(rcpt, 'permit_mx_backup') ? 'smtpd_recipient_restrictions' : undefined;
  if (mxList && config.list('permit_mx_backup_networks').length === 0) {
    warn(mxList, 'permit_mx_backup', 'permit_mx_backup is used with an empty permit_mx_backup_networks: anyone can point an MX record at this host and have it queue their mail; list the primary MX networks in permit_mx_backup_networks');
  }

  // 4. Backscatter: permit_mx_backup without recipient validation before it.
  for (const [param, l] of [['smtpd_relay_restrictions', relay], ['smtpd_recipient_restrictions', rcpt]] as const) {
    const i = l.findIndex((e) => e.name === 'permit_mx_backup');
    if (i < 0) continue;
    const before = l.slice(0, i).some((e) => VERIFY_CHECKS.has(e.name));
    const other = param === 'smtpd_relay_restrictions'
      ? rcpt.slice(0, Math.max(0, rcpt.findIndex((e) => e.name === 'permit_mx_backup' || e.name === 'permit'))).some((e) => VERIFY_CHECKS.has(e.name)) || (rcpt.length > 0 && !rcpt.some((e) => e.name === 'permit_mx_backup' || e.name === 'permit') && rcpt.some((e) => VERIFY_CHECKS.has(e.name)))
      : relay.some((e) => VERIFY_CHECKS.has(e.name));
    if (!before && !other) {
      warn(param, 'permit_mx_backup', `${param}: permit_mx_backup without reject_unverified_recipient or reject_unlisted_recipient before it: mail for nonexistent users is accepted and later bounced (backscatter)`);
    }
  }

  // 5. Policy services on the primary's network without default_action.
  let networks: MatchList | undefined;
  try {
    networks = MatchList.compile(config.list('permit_mx_backup_networks'), { param: 'permit_mx_backup_networks', parentMatch: true, openTable: (r) => openTable(r, { baseDir: config.dir }), baseDir: config.dir });
  } catch { /* reported by validation */ }
  const explicitDefault = config.isSet('smtpd_policy_service_default_action');
  for (const param of lists) {
    for (const e of parsed(config, param)) {
      if (e.name !== 'check_policy_service' || !e.arg) continue;
      let spec;
      try { spec = parsePolicySpec(e.arg); } catch { continue; }
      if (spec.settings.default_action !== undefined || explicitDefault) continue;
      const ep = parseEndpoint(spec.endpoint);
      if (ep.kind !== 'inet' || !networks || networks.empty) continue;
      const inNet = networks.matchSync(ep.host);
      if (inNet) {
        warn(param, spec.endpoint, `${param}: check_policy_service ${spec.endpoint} lives in permit_mx_backup_networks (the primary's network) and has no default_action: while the primary is down every message gets "${config.str('smtpd_policy_service_default_action')}"; use { ${spec.endpoint}, default_action=DUNNO }`);
      }
    }
  }
  networks?.close();

  // 6. No reject at all in the RCPT lists: Postfix refuses to receive mail.
  const all = [...relay, ...rcpt];
  if (!all.some((e) => REJECTS.includes(e.name))) {
    out.push({ severity: 'error', ...at(config.isSet('smtpd_recipient_restrictions') ? 'smtpd_recipient_restrictions' : 'smtpd_relay_restrictions'),
      message: `in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: ${REJECTS.join(', ')} (otherwise the mail system refuses to receive mail)` });
  }
  return out;
}

/**
 * backstop_http_listen: a bad address is an error; an address other hosts can reach is allowed,
 * but without an action token anyone there reads the queue, and with one the token crosses the
 * network in clear text (put a TLS proxy in front): warn unless actions are protected.
 */
function lintHttp(config: Config, mainCf: string): Diagnostic[] {
  const at = config.origin('backstop_http_listen') ?? { file: mainCf, line: 0 };
  let listen;
  try {
    listen = parseListen(config.str('backstop_http_listen'));
  } catch (err) {
    return [{ severity: 'error', ...at, message: `parameter backstop_http_listen: ${(err as Error).message}` }];
  }
  if (!listen || isLoopback(listen.host)) return [];
  const tokenFile = config.str('backstop_http_action_token_file');
  if (tokenFile) {
    const auth = loadActionAuth(isAbsolute(tokenFile) ? tokenFile : resolve(config.dir, tokenFile));
    if (!auth.problem) return [];
    return [{ severity: 'warning', ...at, message: `${auth.problem}; backstop_http_listen ${config.str('backstop_http_listen')} is reachable from other hosts` }];
  }
  return [{ severity: 'warning', ...at, message: `backstop_http_listen ${config.str('backstop_http_listen')} is reachable from other hosts and no backstop_http_action_token_file protects the dashboard's actions: anyone who reaches it reads the queue; listen on 127.0.0.1 behind an authenticating proxy, or set an action token` }];
}

/** backstop_queue_store: `file`, or postgres:FILE whose file must parse (docs/cluster.md). */
function lintQueueStore(config: Config, mainCf: string): Diagnostic[] {
  const at = config.origin('backstop_queue_store') ?? { file: mainCf, line: 0 };
  try {
    const spec = parseQueueStore(config.str('backstop_queue_store'));
    if (spec.kind === 'file') return [];
    loadPgConfig(isAbsolute(spec.file) ? spec.file : resolve(config.dir, spec.file));
  } catch (err) {
    return [{ severity: 'error', ...at, message: `parameter backstop_queue_store: ${(err as Error).message}` }];
  }
  return [];
}

/** Everything `backstop check` reports, sorted by file and line. */
export function checkConfig(loaded: LoadedConfig): Diagnostic[] {
  const out: Diagnostic[] = [...loaded.diagnostics];
  out.push(...validateConfig(loaded, { tableTypes: TABLE_TYPES, restrictions: restrictionValidator }));
  const { config } = loaded;
  // Open every lookup table parameter, as Postfix daemons do at start-up.
  for (const def of PARAMS.values()) {
    if (def.type !== 'maps') continue;
    let refs: string[];
    try { refs = config.list(def.name); } catch { continue; }
    for (const ref of refs) {
      try {
        openTable(ref, { baseDir: config.dir }).close();
      } catch (err) {
        const o = config.origin(def.name) ?? { file: loaded.mainCfPath, line: 0 };
        out.push({ severity: 'error', ...o, message: `parameter ${def.name}: ${(err as Error).message}` });
      }
    }
  }
  // The verify cache's file: LMDB must never map a file it would crash on. A warning, not an
  // error: the file is state, not configuration — `backstop start` itself refuses it ("cannot
  // start: open database …", before binding anything), and a SIGHUP reload keeps the cache it has
  // open, so a bad file on disk must not refuse an otherwise good configuration.
  try {
    checkVerifyStoreFile(config.str('address_verify_map'), { baseDir: config.dir });
  } catch (err) {
    const o = config.origin('address_verify_map') ?? { file: loaded.mainCfPath, line: 0 };
    out.push({ severity: 'warning', ...o, message: `parameter address_verify_map: ${(err as Error).message} (backstop start refuses to start with this file)` });
  }
  if (!out.some((d) => d.severity === 'error')) {
    // A full engine load: match lists, tables, policy clients (no connection is made).
    try {
      const log = new Maillog();
      log.open(undefined, { quiet: true });
      const resolver = new Resolver({ servers: [] });
      const engine = createRestrictionEngine(config, { dns: resolver, myAddresses: () => [], log: log.logger('check') });
      void engine.close();
      resolver.close();
    } catch (err) {
      out.push({ severity: 'error', file: loaded.mainCfPath, line: 0, message: (err as Error).message });
    }
  }
  out.push(...lintBackupMx(config, loaded.mainCfPath));
  out.push(...lintHttp(config, loaded.mainCfPath));
  out.push(...lintQueueStore(config, loaded.mainCfPath));
  out.push(...lintCertificate(config, loaded.mainCfPath), ...lintOutboundTls(config, loaded.mainCfPath));
  for (const s of loaded.services) {
    if (!Object.keys(s.overrides).some((k) => k.startsWith('smtpd_') || k.startsWith('permit_mx'))) continue;
    const own = new Set(lintBackupMx(config, loaded.mainCfPath).map((d) => d.message));
    for (const d of lintBackupMx(config.withOverrides(s.overrides), s.file)) {
      if (!own.has(d.message)) out.push({ ...d, file: s.file, line: s.line, message: `service ${s.service}: ${d.message}` });
    }
  }
  const seen = new Set<string>();
  return out.filter((d) => {
    const k = formatDiagnostic(d);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
