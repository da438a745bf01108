// Interop test helpers: the real peer programs (Postfix restarts, swaks, postgrey, Dovecot auth,
// redis-server, openssl certificates) started on loopback with their own folders, and Backstop
// configured as the backup MX of primary.test. Builds on bench/harness (isolated Postfix, DNS
// sandbox, Backstop starter); adds only what the interop suites need on top of it.
// A program that is not installed is an error naming the Debian package to install: these
// suites never skip. Trusts the installed Debian packages; every wait is bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type CmdResult } from '../../../bench/harness/proc.js';
import { waitFor, portOpen } from '../../helpers/net.js';
import { renderMain, type PostfixInstance, type Params } from '../../../bench/harness/postfix.js';
import { makeConfigDir, startServer, type RunningServer } from '../../helpers/server.js';
import { runCli, type CliResult } from '../../helpers/cli.js';
import type { DnsSandbox } from '../../../bench/harness/sandbox.js';

/** Where each program lives and which Debian package brings it. */
const PROGRAMS: Record<string, { paths: string[]; pkg: string }> = {
  postfix: { paths: ['/usr/sbin/postfix'], pkg: 'postfix' },
  dnsmasq: { paths: ['/usr/sbin/dnsmasq'], pkg: 'dnsmasq-base' },
  swaks: { paths: ['/usr/bin/swaks'], pkg: 'swaks' },
  postgrey: { paths: ['/usr/sbin/postgrey'], pkg: 'postgrey' },
  dovecot: { paths: ['/usr/sbin/dovecot'], pkg: 'dovecot-core' },
  'redis-server': { paths: ['/usr/bin/redis-server'], pkg: 'redis-server' },
  openssl: { paths: ['/usr/bin/openssl'], pkg: 'openssl' },
};

/** The program's path; throws "X is not installed: apt-get install -y PKG" when it is missing. */
export function requireProgram(name: keyof typeof PROGRAMS | string): string {
  const p = PROGRAMS[name];
  if (!p) throw new Error(`interop: unknown program ${name}`);
  const found = p.paths.find((x) => existsSync(x));
  if (!found) throw new Error(`interop: ${name} is not installed (looked in ${p.paths.join(', ')}): apt-get install -y ${p.pkg}`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(`interop: ${name} peers are started as root (own config dirs, privilege drop); run the interop tests as root`);
  }
  return found;
}

export function tempDir(label: string): string {
  const d = mkdtempSync(join(tmpdir(), `backstop-interop-${label}-`));
  chmodSync(d, 0o755);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Backstop

export interface BackstopNodeOptions {
  name: string;
  port: number;
  /** DNS servers for backstop_dns_servers ("127.0.0.53:53" or "127.0.0.1:PORT"). */
  dns: string;
  /** The primary's SMTP port on 127.0.0.2 (transport of primary.test). */
  primaryPort: number;
  /** Extra/overriding main.cf parameters. */
  main?: Params;
  files?: Record<string, string>;
}

/**
 * Backstop as the backup MX of primary.test (the tutorial's policy): the primary on 127.0.0.2
 * (permit_mx_backup_networks), recipients verified by probes, mail for the domain sent by MX
 * lookup to the primary's port.
 */
export function backupParams(o: BackstopNodeOptions): Params {
  return {
    myhostname: `${o.name}.backup.test`,
    mydestination: '',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.254/32',
    backstop_dns_servers: o.dns,
    backstop_dns_timeout: '2s',
    transport_maps: `inline:{ primary.test=smtp:primary.test:${o.primaryPort} }`,
    permit_mx_backup_networks: '127.0.0.2/32',
    address_verify_map: 'btree:$data_directory/verify',
    address_verify_poll_count: '3',
    address_verify_poll_delay: '1s',
    smtpd_relay_restrictions: 'permit_mynetworks, permit_mx_backup, reject_unauth_destination',
    smtpd_recipient_restrictions: 'permit_mynetworks, reject_unverified_recipient, permit_mx_backup, reject_unauth_destination, permit',
    unverified_recipient_reject_code: '550',
    backstop_destination_probe_interval: '1s',
    minimal_backoff_time: '60s',
    smtpd_error_sleep_time: '0s',
    ...o.main,
  };
}

export interface BackstopNode extends RunningServer {
  /** Runs `backstop PROG -c DIR args` (verify, postqueue, ...). */
  command(prog: string, args: string[]): Promise<CliResult>;
  /** Number of log lines matching re. */
  countLog(re: RegExp): number;
}

/** The real `backstop start` (test/helpers/server.ts) on 127.0.0.1:port with backupParams(). */
export async function startBackstopNode(o: BackstopNodeOptions): Promise<BackstopNode> {
  const dir = makeConfigDir({
    'main.cf': renderMain({ queue_directory: 'spool', data_directory: 'data', ...backupParams(o) }),
    'master.cf': `127.0.0.1:${o.port} inet n - n - - smtpd\n`,
    ...o.files,
  });
  let server: RunningServer;
  try {
    server = await startServer(dir, o.port);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return Object.assign(server, {
    command: (prog: string, args: string[]) => runCli([prog, '-c', dir, ...args]),
    countLog(re: RegExp) {
      const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
      return server.log().match(g)?.length ?? 0;
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Postfix (on top of bench/harness/postfix.ts)

/** Starts a stopped harness instance again, in the same DNS sandbox, and waits for its port. */
export async function restartPostfix(pf: PostfixInstance, sandbox: DnsSandbox | undefined, host: string, port: number): Promise<void> {
  let c = { cmd: '/usr/sbin/postfix', args: ['-c', pf.configDir, 'start'] };
  if (sandbox) c = sandbox.wrap(c.cmd, c.args);
  const r = await run(c.cmd, c.args, { check: false, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`postfix -c ${pf.configDir} start failed (${r.code}): ${r.stdout}${r.stderr}\n${pf.log().slice(-2000)}`);
  await waitFor(() => portOpen(port, host, 500), 20_000, `postfix-${pf.name} on ${host}:${port}`);
}

// ---------------------------------------------------------------------------------------------
// swaks

export interface SwaksResult extends CmdResult {
  /** The transcript (swaks writes it on stdout). */
  out: string;
}

/** Runs swaks with these arguments (never against port 25: the caller gives --server/--port). */
export async function swaks(args: string[], timeoutMs = 30_000): Promise<SwaksResult> {
  const bin = requireProgram('swaks');
  const r = await run(bin, ['--timeout', '15', ...args], { check: false, timeoutMs });
  return { ...r, out: r.stdout + r.stderr };
}

// ---------------------------------------------------------------------------------------------
// TLS certificate

/** A self-signed certificate and key (openssl) for CN; returns the file paths. */
export async function makeCert(dir: string, cn: string): Promise<{ certFile: string; keyFile: string }> {
  const openssl = requireProgram('openssl');
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  await run(openssl, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${cn}`], { timeoutMs: 60_000 });
  chmodSync(keyFile, 0o600);
  return { certFile, keyFile };
}

// ---------------------------------------------------------------------------------------------
// Long-running peer processes

export interface Peer {
  port: number;
  dir: string;
  /** What the program printed so far. */
  output(): string;
  stop(): Promise<void>;
}

function spawnPeer(cmd: string, args: string[], dir: string, port: number, what: string, host = '127.0.0.1'): Promise<Peer> {
  const child: ChildProcess = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  let exited = false;
  const exit = new Promise<void>((r) => child.on('exit', () => { exited = true; r(); }));
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exit;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const peer: Peer = { port, dir, output: () => out, stop };
  return waitFor(async () => {
    if (exited) throw new Error(`${what} exited before listening on ${host}:${port}:\n${out}`);
    return portOpen(port, host, 300);
  }, 20_000, `${what} on ${host}:${port}`, 100).then(() => peer, async (err) => { await stop(); throw new Error(`${(err as Error).message}\n${out}`); });
}

function uidOf(user: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === user) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`interop: no user ${user} in /etc/passwd (is its package installed?)`);
}

/** postgrey on 127.0.0.1:port with its own database folder and a short greylisting delay. */
export async function startPostgrey(o: { port: number; delaySec: number }): Promise<Peer> {
  const bin = requireProgram('postgrey');
  const dir = tempDir('postgrey');
  const db = join(dir, 'db');
  mkdirSync(db);
  const pg = uidOf('postgrey');
  chownSync(db, pg.uid, pg.gid);
  // Empty whitelists: the distribution's lists are not part of the test.
  writeFileSync(join(dir, 'whitelist_clients'), '');
  writeFileSync(join(dir, 'whitelist_recipients'), '');
  return spawnPeer(bin, [
    `--inet=127.0.0.1:${o.port}`, `--dbdir=${db}`, `--pidfile=${join(dir, 'postgrey.pid')}`,
    `--delay=${o.delaySec}`, '--user=postgrey', '--group=postgrey',
    `--whitelist-clients=${join(dir, 'whitelist_clients')}`, `--whitelist-recipients=${join(dir, 'whitelist_recipients')}`,
    '--auto-whitelist-clients=0',
  ], dir, o.port, 'postgrey');
}

/**
 * Dovecot's auth service only (no mail protocols), in the foreground with its own base_dir, a
 * passwd-file passdb/userdb with `users` (plain passwords), and `service auth` listening on
 * inet 127.0.0.1:port — the socket smtpd_sasl_path = inet:127.0.0.1:PORT talks to.
 */
export async function startDovecot(o: { port: number; users: Record<string, string> }): Promise<Peer> {
  const bin = requireProgram('dovecot');
  const dir = tempDir('dovecot');
  const nobody = uidOf('nobody');
  const passwd = Object.entries(o.users).map(([u, p]) => `${u}:{PLAIN}${p}:${nobody.uid}:${nobody.gid}::${dir}::`).join('\n') + '\n';
  writeFileSync(join(dir, 'users'), passwd, { mode: 0o644 });
  mkdirSync(join(dir, 'run'));
  mkdirSync(join(dir, 'state'));
  const conf = [
    `base_dir = ${dir}/run`,
    `state_dir = ${dir}/state`,
    `log_path = ${dir}/dovecot.log`,
    'protocols =',
    'listen = 127.0.0.1',
    'ssl = no',
    'disable_plaintext_auth = no',
    'auth_mechanisms = plain login',
    'auth_verbose = yes',
    'auth_failure_delay = 0',
    'passdb {',
    '  driver = passwd-file',
    `  args = scheme=PLAIN ${dir}/users`,
    '}',
    'userdb {',
    '  driver = passwd-file',
    `  args = ${dir}/users`,
    '}',
    'service auth {',
    '  inet_listener auth-inet {',
    '    address = 127.0.0.1',
    `    port = ${o.port}`,
    '  }',
    '}',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'dovecot.conf'), conf);
  const peer = await spawnPeer(bin, ['-F', '-c', join(dir, 'dovecot.conf')], dir, o.port, 'dovecot');
  const output = peer.output;
  peer.output = () => output() + (() => { try { return readFileSync(join(dir, 'dovecot.log'), 'utf8'); } catch { return ''; } })();
  return peer;
}

/** redis-server on 127.0.0.1:port, no persistence, its own folder. */
export function startRedis(o: { port: number }): Promise<Peer> {
  const bin = requireProgram('redis-server');
  const dir = tempDir('redis');
  return spawnPeer(bin, ['--bind', '127.0.0.1', '--port', String(o.port), '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes'], dir, o.port, 'redis-server');
}
