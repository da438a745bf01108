// An isolated Postfix 3.7 instance for benchmarks and interop tests: its own config folder
// (`postfix -c DIR`), queue, data and maillog under one fresh folder, chroot off, postlogd for
// the log file, listening only where the caller's master.cf lines say (loopback). Started inside
// a DNS sandbox's mount namespace (see sandbox.ts), so its resolver sees the test DNS only, and
// optionally inside its own cgroup (meter.ts) for CPU and memory figures.
// Presets build the three roles: backup MX (the seed's restrictions, shared with Backstop's
// benchmark config), primary MX (mailboxes for known users, 550 5.1.1 for others), sending MTA.
// Trusts: Debian's postfix package (/usr/sbin/postfix, daemons in /usr/lib/postfix/sbin), root.
//
//   const dns = await startDnsSandbox({ zone });
//   const pf = await startPostfix({ name: 'primary', sandbox: dns,
//     ...primaryMx({ hostname: 'mx1.primary.test', domain: 'primary.test', users: ['alice'] }),
//     services: ['127.0.0.2:25 inet n - n - - smtpd'] });
//   ... pf.mailbox('alice@primary.test') ...
//   await pf.stop(); pf.cleanup(); await dns.stop();
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { run, requireRoot, sleep, waitFor, portOpen, alive, logWatcher, type CmdResult } from './proc.js';
import { createMeter, type Meter } from './meter.js';
import type { DnsSandbox } from './sandbox.js';

/** The non-inet services of master.cf, every one with chroot off (as in the baseline). */
export const MASTER_CF_SERVICES = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
        -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;

export type Params = Record<string, string>;

/** What a role preset gives: main.cf parameters and files for the config folder. */
export interface PostfixSetup {
  main: Params;
  /** File name (in the config folder, referenced as $config_directory/NAME) → content. */
  files?: Record<string, string>;
  /** Tables to compile with `postmap -c DIR` after writing the files, e.g. "hash:$config_directory/x". */
  postmap?: string[];
  /** Folders (relative to the instance folder) to create owned by uid:gid (mailbox roots). */
  owned?: Array<{ path: string; uid: number; gid: number }>;
}

export interface PostfixOptions extends PostfixSetup {
  /** Label: syslog_name becomes postfix-NAME; also the folder and cgroup label. */
  name: string;
  /** master.cf inet lines, e.g. "127.0.0.1:2525 inet n - n - - smtpd" (plus "-o" lines). */
  services: string[];
  /** The DNS sandbox whose namespace the instance runs in; without one Postfix uses the host's resolver. */
  sandbox?: DnsSandbox;
  /** Start inside its own cgroup and expose CPU/memory figures (default false). */
  meter?: boolean;
  /** Parent folder for the instance folder (default os.tmpdir()). */
  parentDir?: string;
  /** Wait for the inet services to accept connections, ms (default 20 s). */
  startTimeoutMs?: number;
}

export interface QueueCounts {
  maildrop: number; incoming: number; active: number; deferred: number; hold: number; corrupt: number;
  /** All of the above. */
  total: number;
}

export interface PostfixInstance {
  name: string;
  /** The instance folder; conf/, spool/, data/, mail/ and the maillog live in it. */
  baseDir: string;
  configDir: string;
  queueDir: string;
  dataDir: string;
  maillogFile: string;
  /** Set when started with meter: true. */
  meter?: Meter;
  masterPid(): number;
  /** The whole maillog so far. */
  log(): string;
  /** Number of maillog lines matching re. */
  countLog(re: RegExp): number;
  /** Resolves with the first maillog line matching re (written from now or before). */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Runs a Postfix command (postconf, postqueue, postsuper, postmap, ...) with -c configDir. */
  command(prog: string, args: string[], opts?: { input?: string; check?: boolean; timeoutMs?: number }): Promise<CmdResult>;
  /** `postqueue -f`: try every queued message now. */
  flush(): Promise<void>;
  /** `postsuper -d ALL`: delete every queued message. */
  deleteAll(): Promise<void>;
  /** Files in each queue folder, right now. */
  queue(): QueueCounts;
  /** Waits until incoming+active(+maildrop) are empty, i.e. every message delivered or deferred. */
  waitSettled(timeoutMs: number): Promise<void>;
  /** Submits a message with Postfix's sendmail (-C configDir), as a local user would. */
  sendmail(from: string, to: string[], message: string): Promise<void>;
  /** Messages in a mailbox delivered by the virtual agent (Maildir new/ and cur/), oldest first. */
  mailbox(address: string): string[];
  stop(): Promise<void>;
  /** Removes the instance folder (after stop). */
  cleanup(): void;
}

/** Postfix programs live in /usr/sbin on Debian; fall back to PATH. */
function bin(prog: string): string {
  return existsSync(`/usr/sbin/${prog}`) ? `/usr/sbin/${prog}` : prog;
}

export function postfixInstalled(): boolean {
  return existsSync('/usr/sbin/postfix') && existsSync('/usr/sbin/smtp-source') && existsSync('/usr/sbin/smtp-sink');
}

/** "3.7.11" */
export function postfixVersion(): string {
  try { return execFileSync('dpkg-query', ['-W', '-f=${Version}', 'postfix'], { encoding: 'utf8' }).trim(); } catch { return 'unknown'; }
}

function uidOf(user: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === user) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`postfix harness: no user ${user} in /etc/passwd (is the postfix package installed?)`);
}

/** main.cf lines for a parameter map, in insertion order. */
export function renderMain(p: Params): string {
  return Object.entries(p).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
}

/**
 * The seed's backup-MX policy, the same for Postfix and Backstop in every benchmark: the client
 * (127.0.0.1) is not in mynetworks, recipients are verified, domains whose primary MX lies in
 * `primaryNetworks` are backed up, the verify cache is a B-tree file.
 */
export function backupMxParams(o: { hostname: string; primaryNetworks: string; verifyMap?: string }): Params {
  const domain = o.hostname.split('.').slice(1).join('.') || o.hostname;
  return {
    myhostname: o.hostname,
    mydomain: domain,
    myorigin: '$myhostname',
    mydestination: '',
    relay_domains: '',
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.254/32',
    permit_mx_backup_networks: o.primaryNetworks,
    smtpd_relay_restrictions: 'permit_mynetworks, permit_mx_backup, reject_unauth_destination',
    smtpd_recipient_restrictions: 'permit_mynetworks, reject_unverified_recipient, permit_mx_backup, reject_unauth_destination, permit',
    address_verify_map: o.verifyMap ?? 'btree:$data_directory/verify',
    unverified_recipient_reject_code: '550',
  };
}

/**
 * Mailboxes for `users` of `domain` through Postfix's virtual(8) agent (Maildir under the
 * instance's mail/ folder, owned by nobody); unknown users get
 * "550 5.1.1 <x>: Recipient address rejected: User unknown in virtual mailbox table".
 */
export function mailboxDomain(domain: string, users: string[]): PostfixSetup {
  const nobody = uidOf('nobody');
  const lines = users.map((u) => {
    const addr = u.includes('@') ? u : `${u}@${domain}`;
    return `${addr}\t${addr.split('@')[1]}/${addr.split('@')[0]}/`;
  });
  return {
    main: {
      virtual_mailbox_domains: domain,
      virtual_mailbox_base: '$queue_directory/../mail',
      virtual_mailbox_maps: 'texthash:$config_directory/mailboxes',
      virtual_uid_maps: `static:${nobody.uid}`,
      virtual_gid_maps: `static:${nobody.gid}`,
    },
    files: { mailboxes: lines.join('\n') + '\n' },
    owned: [{ path: 'mail', uid: nobody.uid, gid: nobody.gid }],
  };
}

/**
 * A primary MX: accepts mail for `users` of `domain` from anyone and rejects other recipients
 * of the domain with 550 5.1.1. `delivery: 'maildir'` (default) stores messages (read them with
 * mailbox()); 'discard' throws them away after acceptance (cheapest, for load).
 */
export function primaryMx(o: { hostname: string; domain: string; users: string[]; delivery?: 'maildir' | 'discard' }): PostfixSetup {
  const base: Params = {
    myhostname: o.hostname,
    mydomain: o.domain,
    myorigin: '$mydomain',
    mydestination: '',
    inet_interfaces: 'loopback-only',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.254/32',
    smtpd_error_sleep_time: '0s',
  };
  if ((o.delivery ?? 'maildir') === 'maildir') {
    const mb = mailboxDomain(o.domain, o.users);
    return { ...mb, main: { ...base, ...mb.main } };
  }
  const users = o.users.map((u) => (u.includes('@') ? u : `${u}@${o.domain}`));
  return {
    main: {
      ...base,
      relay_domains: o.domain,
      relay_recipient_maps: 'texthash:$config_directory/relay_recipients',
      transport_maps: 'texthash:$config_directory/transport',
    },
    files: {
      relay_recipients: users.map((u) => `${u}\tOK`).join('\n') + '\n',
      transport: `${o.domain}\tdiscard:delivered-by-primary\n`,
    },
  };
}

/**
 * A sending MTA for `domain`: local users submit with sendmail(); mail to other domains goes out
 * by MX (or through `transport`, e.g. { 'primary.test': 'smtp:[127.0.0.1]:2525' }); bounces and
 * other mail for `users` of `domain` land in their mailboxes (its smtpd must listen where the
 * domain's MX points for that).
 */
export function sendingMta(o: { hostname: string; domain: string; users: string[]; transport?: Record<string, string> }): PostfixSetup {
  const mb = mailboxDomain(o.domain, o.users);
  const main: Params = {
    myhostname: o.hostname,
    mydomain: o.domain,
    myorigin: '$mydomain',
    mydestination: '',
    inet_interfaces: 'loopback-only',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    ...mb.main,
    // Try again soon after a 4xx, so tests see the retry within seconds.
    minimal_backoff_time: '5s',
    maximal_backoff_time: '10s',
    queue_run_delay: '5s',
  };
  const files = { ...mb.files };
  if (o.transport && Object.keys(o.transport).length) {
    main.transport_maps = 'texthash:$config_directory/transport';
    files.transport = Object.entries(o.transport).map(([d, t]) => `${d}\t${t}`).join('\n') + '\n';
  }
  return { main, files, owned: mb.owned };
}

function countFiles(dir: string): number {
  let n = 0;
  let entries;
  try { entries = readdirSync(dir, { withFileTypes: true }); } catch { return 0; }
  for (const e of entries) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  return n;
}

/** Files in each queue folder of a Postfix-layout queue (Backstop's spool uses the same names). */
export function queueCounts(queueDir: string): QueueCounts {
  const c = {
    maildrop: countFiles(join(queueDir, 'maildrop')),
    incoming: countFiles(join(queueDir, 'incoming')),
    active: countFiles(join(queueDir, 'active')),
    deferred: countFiles(join(queueDir, 'deferred')),
    hold: countFiles(join(queueDir, 'hold')),
    corrupt: countFiles(join(queueDir, 'corrupt')),
  };
  return { ...c, total: c.maildrop + c.incoming + c.active + c.deferred + c.hold + c.corrupt };
}

export async function startPostfix(opts: PostfixOptions): Promise<PostfixInstance> {
  requireRoot('an isolated Postfix instance');
  if (!existsSync(bin('postfix'))) throw new Error('postfix is not installed: apt-get install postfix (debconf: "No configuration")');
  const baseDir = mkdtempSync(join(opts.parentDir ?? tmpdir(), `backstop-pf-${opts.name}-`));
  chmodSync(baseDir, 0o755); // daemons run as the postfix user and must reach their folders
  const configDir = join(baseDir, 'conf');
  const queueDir = join(baseDir, 'spool');
  const dataDir = join(baseDir, 'data');
  const maillogFile = join(baseDir, 'maillog');
  for (const d of [configDir, queueDir, dataDir]) mkdirSync(d, { recursive: true });
  const pf = uidOf('postfix');
  chownSync(dataDir, pf.uid, pf.gid);
  for (const o of opts.owned ?? []) {
    const p = join(baseDir, o.path);
    mkdirSync(p, { recursive: true });
    chownSync(p, o.uid, o.gid);
  }
  const main: Params = {
    compatibility_level: '3.6',
    queue_directory: queueDir,
    data_directory: dataDir,
    maillog_file: maillogFile,
    maillog_file_prefixes: `/var, /dev/stdout, ${baseDir}`,
    syslog_name: `postfix-${opts.name}`,
    alias_maps: '',
    alias_database: '',
    biff: 'no',
    ...opts.main,
  };
  writeFileSync(join(configDir, 'main.cf'), renderMain(main));
  writeFileSync(join(configDir, 'master.cf'), opts.services.join('\n') + '\n' + MASTER_CF_SERVICES);
  for (const [name, text] of Object.entries(opts.files ?? {})) writeFileSync(join(configDir, name), text);
  writeFileSync(maillogFile, '');

  const command = (prog: string, args: string[], o: { input?: string; check?: boolean; timeoutMs?: number } = {}) => {
    const argv = prog === 'sendmail' ? ['-C', configDir, ...args] : ['-c', configDir, ...args];
    return run(bin(prog), argv, { input: o.input, check: o.check, timeoutMs: o.timeoutMs ?? 60_000 });
  };
  for (const t of opts.postmap ?? []) await command('postmap', [t.replace('$config_directory', configDir)]);

  const meter = opts.meter ? createMeter(`postfix-${opts.name}`) : undefined;
  let inner = { cmd: bin('postfix'), args: ['-c', configDir, 'start'] };
  if (opts.sandbox) inner = opts.sandbox.wrap(inner.cmd, inner.args);
  const outer = meter ? meter.wrap(inner.cmd, inner.args) : inner;
  const started = await run(outer.cmd, outer.args, { check: false, timeoutMs: 60_000 });
  const readLog = () => { try { return readFileSync(maillogFile, 'utf8'); } catch { return ''; } };
  if (started.code !== 0) {
    const log = readLog();
    rmSync(baseDir, { recursive: true, force: true });
    await meter?.close().catch(() => {});
    throw new Error(`postfix -c ${configDir} start failed (${started.code}):\n${started.stdout}${started.stderr}\n${log}`);
  }
  const pidFile = join(queueDir, 'pid', 'master.pid');
  const masterPid = () => Number(readFileSync(pidFile, 'utf8').trim());
  let instance: PostfixInstance;
  const stop = async () => {
    let pid = 0;
    try { pid = masterPid(); } catch { /* never started */ }
    if (pid && alive(pid)) {
      await command('postfix', ['stop'], { check: false, timeoutMs: 30_000 });
      const deadline = Date.now() + 15_000;
      while (alive(pid) && Date.now() < deadline) await sleep(50);
      if (alive(pid)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    }
    if (meter) {
      // Daemons finish after the master; kill what is left of *this* instance only.
      const deadline = Date.now() + 5000;
      while (meter.pids().length && Date.now() < deadline) await sleep(50);
      for (const p of meter.pids()) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
      await meter.close();
    }
  };
  try {
    await waitFor(() => existsSync(pidFile) && alive(masterPid()), 20_000, `postfix-${opts.name} master`);
    meter?.addRoot(masterPid());
    const inets = opts.services
      .map((l) => /^(?:\[?([0-9.:a-f]+)\]?:)?(\d+)\s+inet\s/.exec(l))
      .filter((m): m is RegExpExecArray => !!m)
      .map((m) => ({ host: m[1] ?? '127.0.0.1', port: Number(m[2]) }));
    for (const s of inets) {
      await waitFor(() => portOpen(s.port, s.host, 500), opts.startTimeoutMs ?? 20_000, `postfix-${opts.name} on ${s.host}:${s.port}`);
    }
  } catch (err) {
    const log = readLog();
    await stop();
    throw new Error(`${(err as Error).message}\n${log}`);
  }

  instance = {
    name: opts.name,
    baseDir, configDir, queueDir, dataDir, maillogFile, meter,
    masterPid,
    log: readLog,
    ...logWatcher(readLog, `maillog line in postfix-${opts.name}:`),
    command,
    async flush() { await command('postqueue', ['-f']); },
    async deleteAll() { await command('postsuper', ['-d', 'ALL'], { check: false, timeoutMs: 120_000 }); },
    queue: () => queueCounts(queueDir),
    async waitSettled(ms) {
      await waitFor(() => { const q = instance.queue(); return q.incoming + q.active + q.maildrop === 0; }, ms, `postfix-${opts.name} queue to settle`, 100);
    },
    async sendmail(from, to, message) {
      await command('sendmail', ['-f', from, '-i', '--', ...to], { input: message });
    },
    mailbox(address) {
      const [local, domain] = address.split('@');
      const root = join(baseDir, 'mail', domain, local);
      const out: Array<{ name: string; text: string }> = [];
      for (const sub of ['new', 'cur']) {
        let names: string[] = [];
        try { names = readdirSync(join(root, sub)); } catch { continue; }
        for (const n of names) out.push({ name: n, text: readFileSync(join(root, sub, n), 'utf8') });
      }
      // Maildir names start with the delivery time in seconds, then a unique part.
      return out.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true })).map((m) => m.text);
    },
    stop,
    cleanup() { rmSync(baseDir, { recursive: true, force: true }); },
  };
  return instance;
}

// ---------------------------------------------------------------------------------------------
// smtp-sink and smtp-source, the load tools that come with Postfix.

export interface SmtpSink {
  address: string;
  port: number;
  /** Messages received so far (from smtp-sink's -c counter: incremented at each "."). */
  messages(): number;
  stop(): Promise<void>;
}

/**
 * Starts `smtp-sink -c -u nobody -h HOSTNAME ADDRESS:PORT BACKLOG` (accepts everything).
 * `extra` adds options, e.g. ['-W', 'connect:1'] for a slow primary.
 */
export async function startSmtpSink(o: { address: string; port: number; hostname?: string; backlog?: number; extra?: string[] }): Promise<SmtpSink> {
  const args = ['-c', '-u', 'nobody', '-m', '1024', '-h', o.hostname ?? 'smtp-sink', ...(o.extra ?? []), `${o.address}:${o.port}`, String(o.backlog ?? 1024)];
  const child = spawn(bin('smtp-sink'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let count = 0;
  let tail = '';
  let err = '';
  child.stdout!.setEncoding('latin1');
  child.stdout!.on('data', (d: string) => {
    tail = (tail + d).slice(-200);
    const all = tail.match(/mesg=(\d+)/g);
    if (all) count = Number(all[all.length - 1].slice(5));
  });
  child.stderr!.on('data', (d) => (err += d));
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`smtp-sink ${args.join(' ')} exited: ${err}`);
    return portOpen(o.port, o.address, 300);
  }, 10_000, `smtp-sink on ${o.address}:${o.port}`);
  return {
    address: o.address,
    port: o.port,
    messages: () => count,
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    },
  };
}

export interface SmtpSourceOptions {
  host: string;
  port: number;
  /** -s: parallel sessions */
  sessions: number;
  /** -m: messages in all */
  messages: number;
  /** -l: body length in bytes (smtp-source's default body is ~0.4 KB) */
  size?: number;
  from?: string;
  to?: string;
  /** -d: don't disconnect after each message */
  reuse?: boolean;
  /** Extra options (before the address). */
  extra?: string[];
  timeoutMs?: number;
}

/** The smtp-source command line for these options (also printed in reports). */
export function smtpSourceArgs(o: SmtpSourceOptions): string[] {
  const a = ['-s', String(o.sessions), '-m', String(o.messages)];
  if (o.size) a.push('-l', String(o.size));
  a.push('-f', o.from ?? 'sender@client.test', '-t', o.to ?? 'user@primary.test');
  if (o.reuse) a.push('-d');
  a.push(...(o.extra ?? []), `${o.host}:${o.port}`);
  return a;
}

/** Runs smtp-source to completion; throws with its output when it reports an error. */
export async function runSmtpSource(o: SmtpSourceOptions): Promise<{ ms: number; command: string }> {
  const args = smtpSourceArgs(o);
  const r = await run(bin('smtp-source'), args, { check: false, timeoutMs: o.timeoutMs ?? 600_000 });
  if (r.code !== 0 || r.stderr.trim()) throw new Error(`smtp-source ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim().slice(0, 500)}`);
  return { ms: r.ms, command: `smtp-source ${args.join(' ')}` };
}
