// DNS sandbox for programs that read /etc/resolv.conf (Postfix, smtp-source, swaks): dnsmasq
// serving only the zone we give it on a loopback address, port 53, and a private mount namespace
// (`unshare -m`) in which /etc/resolv.conf is a bind mount of a file naming that address.
// The machine's own /etc/resolv.conf is never touched: the bind mount is made by the shell that
// `unshare` starts *inside* the new namespace, so it cannot land in the host's namespace.
// Backstop reaches the same server through `backstop_dns_servers = <servers>`.
// Trusts: dnsmasq (never forwards: --no-resolv, --local for every zone), util-linux unshare/nsenter.
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, writeFileSync, readFileSync, readlinkSync, rmSync, existsSync, chmodSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot, run, sleep, stopPid, waitFor, alive } from './proc.js';

/** The records a test or benchmark declares; a subset of test/helpers/dnsserver.ts's ZoneSpec. */
export interface SandboxName {
  A?: string[];
  /** [preference, exchange] */
  MX?: Array<[number, string]>;
  TXT?: string[];
}
export type SandboxZone = Record<string, SandboxName>;

export interface DnsSandboxOptions {
  zone: SandboxZone;
  /** Loopback address for dnsmasq (port 53). Default: the first free one of 127.0.0.53, 127.0.53.1, 127.0.53.2, ... */
  address?: string;
  /** Folder for the resolv.conf file, pid and log (default: a fresh temporary folder, removed by stop()). */
  dir?: string;
  /** Log every query to `<dir>/dnsmasq.log` (default false: logging costs CPU under load). */
  logQueries?: boolean;
}

export interface DnsSandbox {
  /** The loopback address dnsmasq listens on (port 53). */
  address: string;
  /** "ADDRESS:53", the value for backstop_dns_servers. */
  servers: string;
  dir: string;
  /** Pid of the namespace holder process (`nsenter -t PID -m` enters the namespace). */
  nsPid: number;
  /** Command and arguments that run `cmd args` inside the namespace. */
  wrap(cmd: string, args: string[]): { cmd: string; args: string[] };
  /** The dnsmasq query log (empty unless logQueries). */
  queryLog(): string;
  stop(): Promise<void>;
}

const DNSMASQ = existsSync('/usr/sbin/dnsmasq') ? '/usr/sbin/dnsmasq' : 'dnsmasq';

/** dnsmasq's command line for a zone: local (never forwarded) for each top-level label used. */
export function dnsmasqArgs(zone: SandboxZone, address: string, dir: string, logQueries: boolean): string[] {
  const args = [
    '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--no-poll',
    `--listen-address=${address}`, '--bind-interfaces', '--port=53', '--user=root', '--group=root',
    `--pid-file=${join(dir, 'dnsmasq.pid')}`, '--domain-needed', '--bogus-priv', '--cache-size=1000',
    // dnsmasq answers its own records with TTL 0 unless told; real zones give minutes. Postfix has
    // no DNS cache of its own (it asks every time either way); Backstop's resolver caches by TTL.
    '--local-ttl=300',
  ];
  if (logQueries) args.push(`--log-facility=${join(dir, 'dnsmasq.log')}`, '--log-queries');
  else args.push(`--log-facility=${join(dir, 'dnsmasq.log')}`);
  const locals = new Set<string>();
  for (const [rawName, spec] of Object.entries(zone)) {
    const name = rawName.replace(/\.$/, '').toLowerCase();
    if (!/^[a-z0-9.-]+$/.test(name) || !name.includes('.')) throw new Error(`dns sandbox: bad name "${rawName}"`);
    // Authoritative (NXDOMAIN for anything else) for the whole top-level label; never forward.
    locals.add(name.split('.').slice(-1)[0]);
    for (const ip of spec.A ?? []) args.push(`--host-record=${name},${ip}`);
    for (const [pref, host] of spec.MX ?? []) args.push(`--mx-host=${name},${host.replace(/\.$/, '')},${pref}`);
    for (const txt of spec.TXT ?? []) args.push(`--txt-record=${name},${txt}`);
  }
  for (const l of locals) args.push(`--local=/${l}/`);
  return args;
}

/** Can we bind UDP port 53 on this address (nobody else uses it)? */
function udp53Free(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => { s.close(); resolve(false); });
    s.bind(53, address, () => s.close(() => resolve(true)));
  });
}

export async function pickDnsAddress(): Promise<string> {
  const candidates = ['127.0.0.53', ...Array.from({ length: 60 }, (_, i) => `127.0.53.${i + 1}`)];
  for (const a of candidates) if (await udp53Free(a)) return a;
  throw new Error('dns sandbox: no free loopback address for port 53 among 127.0.0.53, 127.0.53.1-60');
}

function mntNs(pid: number | 'self'): string {
  return readlinkSync(`/proc/${pid}/ns/mnt`);
}

export async function startDnsSandbox(opts: DnsSandboxOptions): Promise<DnsSandbox> {
  requireRoot('the DNS sandbox');
  const own = !opts.dir;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'backstop-dns-'));
  chmodSync(dir, 0o755);
  const address = opts.address ?? (await pickDnsAddress());
  const resolv = join(dir, 'resolv.conf');
  writeFileSync(resolv, `# written by bench/harness/sandbox.ts\nnameserver ${address}\noptions timeout:2 attempts:2\n`, { mode: 0o644 });

  let dnsmasq: ChildProcess | undefined;
  let holder: ChildProcess | undefined;
  const stop = async () => {
    if (holder?.pid) await stopPid(holder.pid, 1000);
    if (dnsmasq?.pid) await stopPid(dnsmasq.pid, 2000);
    if (own) rmSync(dir, { recursive: true, force: true });
  };
  try {
    let dnsErr = '';
    dnsmasq = spawn(DNSMASQ, dnsmasqArgs(opts.zone, address, dir, opts.logQueries ?? false), { stdio: ['ignore', 'ignore', 'pipe'] });
    dnsmasq.stderr!.on('data', (d) => (dnsErr += d));
    const resolver = new Resolver({ timeout: 300, tries: 1 });
    resolver.setServers([address]);
    const probeName = Object.entries(opts.zone).find(([, s]) => s.A?.length)?.[0];
    await waitFor(async () => {
      if (dnsmasq!.exitCode !== null) throw new Error(`dnsmasq exited (${dnsmasq!.exitCode}): ${dnsErr}`);
      if (!probeName) return true;
      try { return (await resolver.resolve4(probeName)).length > 0; } catch { return false; }
    }, 10_000, `dnsmasq on ${address}:53`, 50);

    // The bind mount happens inside the new namespace (the shell runs after unshare(2)).
    const script = `mount --bind "$1" /etc/resolv.conf && exec sleep 2147483647`;
    holder = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', resolv], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let holdErr = '';
    holder.stderr!.on('data', (d) => (holdErr += d));
    const hostNs = mntNs('self');
    await waitFor(() => {
      if (holder!.exitCode !== null) throw new Error(`unshare/mount failed (${holder!.exitCode}): ${holdErr}`);
      try {
        return alive(holder!.pid!) && readFileSync(`/proc/${holder!.pid}/comm`, 'utf8').trim() === 'sleep' && mntNs(holder!.pid!) !== hostNs;
      } catch { return false; }
    }, 10_000, 'the private mount namespace');
    const nsPid = holder.pid!;
    // Check from inside: the namespace sees our resolv.conf, the host still sees its own.
    const inside = await run('nsenter', ['-t', String(nsPid), '-m', 'cat', '/etc/resolv.conf']);
    if (!inside.stdout.includes(`nameserver ${address}`)) throw new Error(`dns sandbox: namespace resolv.conf is not ours:\n${inside.stdout}`);
    if (readFileSync('/etc/resolv.conf', 'utf8').includes('written by bench/harness/sandbox.ts')) {
      throw new Error('dns sandbox: the host resolv.conf shows the sandbox file; refusing to continue');
    }
    return {
      address,
      servers: `${address}:53`,
      dir,
      nsPid,
      wrap: (cmd, args) => ({ cmd: 'nsenter', args: ['-t', String(nsPid), '-m', '--', cmd, ...args] }),
      queryLog: () => { try { return readFileSync(join(dir, 'dnsmasq.log'), 'utf8'); } catch { return ''; } },
      stop,
    };
  } catch (err) {
    await stop();
    await sleep(0);
    throw err;
  }
}
