// The side-by-side lab every scenario uses: a DNS sandbox saying primary.test's MX are
// mx1.primary.test (127.0.0.2, preference 10) and mx2.backup.test (127.0.0.1, preference 20);
// Postfix as the backup MX on 127.0.0.1:2525 and Backstop on 127.0.0.1:2526, both with the
// seed's restrictions (backupMxParams) and each in its own cgroup; the primary is smtp-sink on
// 127.0.0.2:25, switched on and off by the scenario. Also: command-line options, statistics,
// and the report format (bench/README.md) that bench/run-all.ts collects.
// Trusts the harness modules; a Backstop that does not start is reported, not fatal.
import { cpus, totalmem, release } from 'node:os';
import { execFileSync } from 'node:child_process';
import { startDnsSandbox, type DnsSandbox, type SandboxZone } from './sandbox.js';
import { startPostfix, backupMxParams, startSmtpSink, postfixVersion, type PostfixInstance, type SmtpSink, type Params } from './postfix.js';
import { startBackstop, type BackstopInstance } from './backstop.js';
import { smtpSession } from './smtpclient.js';
import { sleep, waitFor } from './proc.js';

// ---------------------------------------------------------------------------------------------
// Report format: the last line of a benchmark's stdout is one JSON BenchReport.

export interface Stat {
  median: number;
  min: number;
  max: number;
  /** Number of runs the figures come from. */
  runs: number;
  /** Instead of a number (e.g. "not drained after 60 s"); median etc. are then NaN. */
  text?: string;
}

export interface BenchRow {
  /** The case, e.g. "20 sessions, 1 KB". */
  case: string;
  /** What is measured, with its unit, e.g. "msgs/s". */
  metric: string;
  /** Which direction is better. */
  better: 'higher' | 'lower';
  backstop: Stat | null;
  postfix: Stat | null;
  /** Why a side has no figure. */
  backstopNote?: string;
  postfixNote?: string;
  /** The exact command reproducing this row. */
  command: string;
  target?: string;
}

export interface BenchReport {
  bench: string;
  title: string;
  rows: BenchRow[];
  notes?: string[];
  /** SVG files written by the benchmark (paths relative to the repository), to embed. */
  charts?: Array<{ file: string; alt: string }>;
  versions?: Record<string, string>;
  seconds?: number;
}

export function stat(values: number[]): Stat | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1], runs: v.length };
}

export function textStat(text: string, runs = 1): Stat {
  return { median: NaN, min: NaN, max: NaN, runs, text };
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const a = Math.abs(n);
  return a >= 100 ? n.toFixed(0) : a >= 10 ? n.toFixed(1) : a >= 1 ? n.toFixed(2) : n.toFixed(3);
}
export function fmtStat(s: Stat | null): string {
  if (!s) return 'not run';
  if (s.text) return s.text;
  return s.runs > 1 ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : fmt(s.median);
}

/** Prints a readable table, then the JSON report as the last line. */
export function emitReport(r: BenchReport): void {
  console.log(`\n== ${r.title}`);
  for (const row of r.rows) {
    console.log(`  ${row.case} | ${row.metric}: backstop ${fmtStat(row.backstop)}${row.backstopNote ? ` [${row.backstopNote}]` : ''}; postfix ${fmtStat(row.postfix)}${row.postfixNote ? ` [${row.postfixNote}]` : ''}${row.target ? `; target ${row.target}` : ''}`);
  }
  for (const n of r.notes ?? []) console.log(`  note: ${n}`);
  console.log(JSON.stringify(r));
}

// ---------------------------------------------------------------------------------------------
// Options: --messages N --runs N --servers postfix,backstop --sessions 1,20 --sizes 1024 ...

export interface BenchArgs {
  messages: number;
  runs: number;
  servers: Array<'postfix' | 'backstop'>;
  sessions: number[];
  sizes: number[];
  /** Seconds to wait for something that may never come (Postfix's backoff). */
  cap: number;
  connections: number;
  raw: string[];
}

export function parseArgs(defaults: Partial<BenchArgs> & { messages: number; runs: number }, argv = process.argv.slice(2)): BenchArgs {
  const a: BenchArgs = {
    servers: ['postfix', 'backstop'], sessions: [20], sizes: [1024], cap: 60, connections: 2000, raw: argv, ...defaults,
  };
  const list = (v: string) => v.split(',').map((x) => Number(x.trim().replace(/k$/i, '000'))).filter((x) => Number.isFinite(x) && x > 0);
  for (let i = 0; i < argv.length; i++) {
    const [k, inline] = argv[i].split('=', 2);
    const v = inline ?? argv[++i];
    if (v === undefined) throw new Error(`option ${k} needs a value`);
    switch (k) {
      case '--messages': a.messages = Number(v); break;
      case '--runs': a.runs = Number(v); break;
      case '--cap': a.cap = Number(v); break;
      case '--connections': a.connections = Number(v); break;
      case '--sessions': a.sessions = list(v); break;
      case '--sizes': a.sizes = list(v); break;
      case '--servers': a.servers = v.split(',').map((s) => s.trim()).filter((s): s is 'postfix' | 'backstop' => s === 'postfix' || s === 'backstop'); break;
      default: throw new Error(`unknown option ${k} (known: --messages --runs --sessions --sizes --servers --cap --connections)`);
    }
  }
  for (const [k, v] of Object.entries({ messages: a.messages, runs: a.runs, cap: a.cap, connections: a.connections })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${v}`);
  }
  if (!a.servers.length) throw new Error('--servers: postfix and/or backstop');
  return a;
}

// ---------------------------------------------------------------------------------------------
// The lab.

export const ZONE: SandboxZone = {
  'primary.test': { MX: [[10, 'mx1.primary.test'], [20, 'mx2.backup.test']] },
  'mx1.primary.test': { A: ['127.0.0.2'] },
  'mx2.backup.test': { A: ['127.0.0.1'] },
  'client.test': { MX: [[10, 'mx.client.test']] },
  'mx.client.test': { A: ['127.0.0.9'] },
};
export const POSTFIX_PORT = 2525;
export const BACKSTOP_PORT = 2526;
export const PRIMARY = { address: '127.0.0.2', port: 25 };
export const RCPT = 'user@primary.test';

/** The same for both servers: the seed's policy, plus what a one-IP load generator needs. */
export function sharedParams(extra: Params = {}): Params {
  return {
    ...backupMxParams({ hostname: 'mx2.backup.test', primaryNetworks: '127.0.0.2/32' }),
    // Every benchmark client comes from 127.0.0.1: lift the per-client connection limit (50).
    smtpd_client_connection_count_limit: '0',
    ...extra,
  };
}

export interface Server {
  kind: 'postfix' | 'backstop';
  port: number;
  queue(): { incoming: number; active: number; deferred: number; total: number };
  waitSettled(ms: number): Promise<void>;
  deleteAll(): Promise<void>;
  flush(): Promise<void>;
  countLog(re: RegExp): number;
  log(): string;
  cpuSeconds(): number;
  meter: NonNullable<PostfixInstance['meter']>;
  /** How the server was started (for the report). */
  startCommand: string;
  stop(): Promise<void>;
}

export interface Lab {
  dns: DnsSandbox;
  servers: Server[];
  /** Why Backstop is missing, when it is. */
  backstopError?: string;
  primaryUp(): Promise<SmtpSink>;
  primaryDown(): Promise<void>;
  sink(): SmtpSink | undefined;
  close(): Promise<void>;
}

export interface LabOptions {
  servers: Array<'postfix' | 'backstop'>;
  /** Extra main.cf parameters for both servers. */
  params?: Params;
  postfixParams?: Params;
  backstopParams?: Params;
  /** Extra files in Backstop's configuration directory (e.g. a postgres: store's file). */
  backstopFiles?: Record<string, string>;
  /** master.cf smtpd columns after "inet" (Postfix), default "n - n - - smtpd". */
  postfixSmtpd?: string;
  /** Verify RCPT (cache it) with the primary up before returning (default true). */
  warm?: boolean;
}

export async function startLab(o: LabOptions): Promise<Lab> {
  const dns = await startDnsSandbox({ zone: ZONE });
  let sink: SmtpSink | undefined;
  const servers: Server[] = [];
  let backstopError: string | undefined;
  const lab: Lab = {
    dns,
    servers,
    get backstopError() { return backstopError; },
    async primaryUp() {
      if (!sink) sink = await startSmtpSink({ ...PRIMARY, hostname: 'mx1.primary.test' });
      return sink;
    },
    async primaryDown() { await sink?.stop(); sink = undefined; },
    sink: () => sink,
    async close() {
      for (const s of servers) await s.stop().catch((e) => console.error(`stop ${s.kind}: ${e.message}`));
      await sink?.stop();
      await dns.stop();
    },
  };
  try {
    if (o.servers.includes('postfix')) {
      const pf = await startPostfix({
        name: 'backup', sandbox: dns, meter: true,
        services: [`127.0.0.1:${POSTFIX_PORT} inet ${o.postfixSmtpd ?? 'n - n - - smtpd'}`],
        main: sharedParams({ ...o.params, ...o.postfixParams }),
      });
      servers.push({
        kind: 'postfix', port: POSTFIX_PORT,
        queue: () => pf.queue(), waitSettled: (ms) => pf.waitSettled(ms), deleteAll: () => pf.deleteAll(), flush: () => pf.flush(),
        countLog: (re) => pf.countLog(re), log: () => pf.log(), cpuSeconds: () => pf.meter!.cpuSeconds(), meter: pf.meter!,
        startCommand: `postfix -c ${pf.configDir} start (inside the DNS sandbox's mount namespace)`,
        async stop() { await pf.stop(); pf.cleanup(); },
      });
    }
    if (o.servers.includes('backstop')) {
      try {
        const bs = await startBackstop({
          meter: true,
          // BENCH_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof": every Backstop process
          // (workers inherit the master's execArgv) writes a CPU profile when it exits.
          nodeOptions: process.env.BENCH_NODE_OPTIONS?.split(/\s+/).filter(Boolean),
          services: [`127.0.0.1:${BACKSTOP_PORT} inet n - n - - smtpd`],
          files: o.backstopFiles,
          main: { ...sharedParams({ ...o.params, ...o.backstopParams }), backstop_dns_servers: dns.servers },
        });
        servers.push({
          kind: 'backstop', port: BACKSTOP_PORT,
          queue: () => bs.queue(), waitSettled: (ms) => bs.waitSettled(ms), deleteAll: () => bs.deleteAll(), flush: () => bs.flush(),
          countLog: (re) => bs.countLog(re), log: () => bs.log(), cpuSeconds: () => bs.meter!.cpuSeconds(), meter: bs.meter!,
          startCommand: `node bin/backstop.js start -c ${bs.configDir}`,
          async stop() { await bs.stop(); bs.cleanup(); },
        });
      } catch (e) {
        backstopError = `Backstop did not start: ${(e as Error).message.split('\n')[0]}`;
        console.error(backstopError);
        console.error((e as Error).message.split('\n').slice(1, 30).join('\n'));
      }
    }
    if (o.warm ?? true) {
      await lab.primaryUp();
      for (const s of [...servers]) {
        try {
          await verifyRecipient(s.port, RCPT);
        } catch (e) {
          const msg = `${s.kind} could not verify ${RCPT}: ${(e as Error).message}`;
          if (s.kind === 'postfix') throw new Error(msg);
          backstopError = msg;
          console.error(msg);
          await s.stop();
          servers.splice(servers.indexOf(s), 1);
        }
      }
    }
    return lab;
  } catch (e) {
    await lab.close();
    throw e;
  }
}

/** Asks for RCPT until the answer is 250 (the verify cache then holds the recipient). */
export async function verifyRecipient(port: number, rcpt: string, timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now();
  let last = '';
  while (Date.now() - t0 < timeoutMs) {
    const s = await smtpSession({ host: '127.0.0.1', port });
    await s.command('EHLO client.test');
    await s.command('MAIL FROM:<sender@client.test>');
    const r = await s.command(`RCPT TO:<${rcpt}>`, 20_000);
    await s.quit();
    if (r.code === 250) return Date.now() - t0;
    last = r.text;
    await sleep(500);
  }
  throw new Error(`RCPT ${rcpt} not accepted within ${timeoutMs} ms (last reply: ${last})`);
}

/** Waits until the server has nothing in incoming/active, bounded; false when it did not settle. */
export async function settled(s: Server, ms: number): Promise<boolean> {
  try { await s.waitSettled(ms); return true; } catch { return false; }
}

export async function waitMessages(sink: SmtpSink, n: number, ms: number): Promise<boolean> {
  try { await waitFor(() => sink.messages() >= n, ms, `${n} messages at the primary`, 20); return true; } catch { return false; }
}

// ---------------------------------------------------------------------------------------------

export interface Machine {
  cores: number;
  cpu: string;
  memoryGiB: number;
  kernel: string;
  disk: string;
  node: string;
  postfix: string;
  backstop: string;
}

export function machine(): Machine {
  const sh = (cmd: string, args: string[]) => { try { return execFileSync(cmd, args, { encoding: 'utf8' }).trim(); } catch { return ''; } };
  const df = sh('df', ['-hT', '/tmp']).split('\n')[1]?.split(/\s+/) ?? [];
  let pkg = '';
  try { pkg = JSON.parse(execFileSync('cat', ['package.json'], { encoding: 'utf8' })).version; } catch { /* not in repo root */ }
  const commit = sh('git', ['rev-parse', '--short', 'HEAD']);
  return {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    disk: df.length ? `${df[0]} ${df[1]} (${df[2]}, ${df[4]} free) for /tmp` : 'unknown',
    node: process.version,
    postfix: postfixVersion(),
    backstop: `${pkg || '?'}${commit ? ` (git ${commit})` : ''}`,
  };
}
