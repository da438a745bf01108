// Runs every benchmark in bench/ and writes docs/PERFORMANCE.md (plus docs/perf/last-run.json).
// A benchmark is bench/*.ts except run-all.ts, files starting with "_" and helper children
// ("*-child.ts"); bench/harness/ holds shared code. The scenario-* benchmarks end their stdout
// with one JSON BenchReport line (bench/harness/lab.ts, bench/README.md), which becomes a table:
// Backstop's figure, Postfix's, the ratio, the command reproducing the row. Other benchmarks'
// output is copied as it is. Each runs in its own process with a time limit.
// --merge: rerun only the chosen benchmarks and replace their results in docs/perf/last-run.json,
// then rewrite docs/PERFORMANCE.md from the merged results (each section says when it ran).
// Run: npm run bench [-- --only scenario-1,queue --runs 3 --quick --timeout 900 --merge]
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './harness/backstop.js';
import { machine, fmtStat, type BenchReport, type BenchRow, type Stat } from './harness/lab.js';

interface Options { only: string[]; runs?: number; quick: boolean; timeoutS: number; merge: boolean }

function options(argv: string[]): Options {
  const o: Options = { only: [], quick: false, timeoutS: 900, merge: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--only') o.only = (argv[++i] ?? '').split(',').filter(Boolean);
    else if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a === '--timeout') o.timeoutS = Number(argv[++i]);
    else if (a === '--merge') o.merge = true;
    else throw new Error(`run-all: unknown option ${a} (known: --only LIST --runs N --quick --timeout SECONDS --merge)`);
  }
  if (o.runs !== undefined && !(Number.isInteger(o.runs) && o.runs > 0)) throw new Error('run-all: --runs needs a positive integer');
  return o;
}

/** Smaller runs for --quick (a smoke run of the whole suite in a few minutes). */
const QUICK: Record<string, string[]> = {
  'scenario-1-accept-primary-down': ['--messages', '300', '--sessions', '1,20', '--sizes', '1024'],
  'scenario-2-accept-primary-up': ['--messages', '300'],
  'scenario-3-rcpt-latency': ['--messages', '500'],
  'scenario-4-drain': ['--messages', '2000', '--cap', '20'],
  'scenario-5-idle-connections': ['--connections', '300'],
  'pg-store': ['--messages', '300', '--runs', '1'],
  'cluster-drain': ['--messages', '1000'],
};

interface Outcome { name: string; command: string; code: number; seconds: number; report?: BenchReport; output: string; at?: string; load?: number }

/** The 1-minute load average. */
function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/**
 * A figure from a busy machine is not a figure: before each benchmark, wait (at most 3 minutes)
 * for the 1-minute load average to fall under 0.5. Returns the load average it starts at.
 */
async function quietMachine(): Promise<number> {
  const until = Date.now() + 180_000;
  let load = loadAverage();
  while (load >= 0.5 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 5000));
    load = loadAverage();
  }
  return load;
}

/** ", began at load average L" for an outcome that recorded it. */
function began(o: Outcome): string {
  return o.load === undefined ? '' : `, began at load average ${o.load.toFixed(2)}`;
}

function runOne(name: string, args: string[], timeoutS: number): Promise<Outcome> {
  const file = join('bench', `${name}.ts`);
  const argv = ['--import', 'tsx', file, ...args];
  const command = `npx tsx ${file}${args.length ? ' ' + args.join(' ') : ''}`;
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BACKSTOP_BENCH: '1' } });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { process.stderr.write(`  [${name}] ${d}`); out += d; });
    const timer = setTimeout(() => { out += `\nrun-all: killed after ${timeoutS} s\n`; child.kill('SIGTERM'); setTimeout(() => child.kill('SIGKILL'), 20_000); }, timeoutS * 1000);
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines = out.trimEnd().split('\n');
      let report: BenchReport | undefined;
      for (let i = lines.length - 1; i >= 0 && i >= lines.length - 5; i--) {
        const l = lines[i].trim();
        if (l.startsWith('{') && l.includes('"bench"')) { try { report = JSON.parse(l); break; } catch { /* not ours */ } }
      }
      resolve({ name, command, code: code ?? -1, seconds: (Date.now() - t0) / 1000, report, output: out });
    });
  });
}

function ratio(row: BenchRow): string {
  const b = row.backstop, p = row.postfix;
  if (!b || !p || b.text || p.text || !p.median || !b.median) return '–';
  const r = b.median / p.median;
  const good = row.better === 'higher' ? r >= 1 : r <= 1;
  const factor = row.better === 'higher' ? r : 1 / r;
  return `${r.toFixed(2)} (${good ? `${factor.toFixed(1)}× better` : `${(1 / factor).toFixed(1)}× worse`})`;
}

function cell(s: Stat | null, note?: string): string {
  const v = fmtStat(s);
  return s ? v : `not run${note ? `: ${note.replace(/\|/g, '/')}` : ''}`;
}

function table(r: BenchReport): string {
  const out: string[] = [];
  const commands: string[] = [];
  out.push('| # | case | metric | Backstop | Postfix 3.7 | ratio B/P | target |');
  out.push('|---:|---|---|---:|---:|---:|---|');
  r.rows.forEach((row, i) => {
    let ci = commands.indexOf(row.command);
    if (ci < 0) { commands.push(row.command); ci = commands.length - 1; }
    out.push(`| ${i + 1} | ${row.case} | ${row.metric} (${row.better} is better) | ${cell(row.backstop, row.backstopNote)} | ${cell(row.postfix, row.postfixNote)} | ${ratio(row)} | ${row.target ?? ''} |`);
  });
  out.push('');
  out.push('Commands (as root, after `npm run build`):');
  out.push('');
  for (const [i, c] of commands.entries()) {
    const rows = r.rows.map((row, j) => (row.command === c ? j + 1 : 0)).filter(Boolean);
    out.push(`- rows ${rows.join(', ')}: \`${c}\``);
  }
  return out.join('\n');
}

const opts = options(process.argv.slice(2));
const all = readdirSync(join(repoRoot, 'bench'))
  .filter((f) => f.endsWith('.ts') && f !== 'run-all.ts' && !f.startsWith('_') && !f.endsWith('-child.ts'))
  .map((f) => f.replace(/\.ts$/, ''))
  .sort((a, b) => Number(!a.startsWith('scenario-')) - Number(!b.startsWith('scenario-')) || a.localeCompare(b));
const chosen = opts.only.length ? all.filter((n) => opts.only.some((o) => n.includes(o))) : all;
const started = new Date();
const m = machine();
const outcomes: Outcome[] = [];
for (const name of chosen) {
  const args = [...(opts.quick ? QUICK[name] ?? [] : [])];
  if (opts.runs && name.startsWith('scenario-')) args.push('--runs', String(opts.runs));
  const load = await quietMachine();
  console.error(`== ${name} ${args.join(' ')} (load average ${load.toFixed(2)})`);
  const o = { ...(await runOne(name, args, opts.timeoutS)), at: new Date().toISOString(), load };
  console.error(`== ${name}: exit ${o.code} after ${o.seconds.toFixed(0)} s${o.report ? '' : ' (no JSON report)'}`);
  outcomes.push(o);
}

const lastRun = join(repoRoot, 'docs', 'perf', 'last-run.json');
if (opts.merge && existsSync(lastRun)) {
  const prev = JSON.parse(readFileSync(lastRun, 'utf8')) as { outcomes: Outcome[] };
  const fresh = new Map(outcomes.map((o) => [o.name, o]));
  const merged = prev.outcomes.map((o) => fresh.get(o.name) ?? { ...o, output: o.output ?? '' });
  for (const o of outcomes) if (!prev.outcomes.some((p) => p.name === o.name)) merged.push(o);
  outcomes.splice(0, outcomes.length, ...merged.sort((a, b) => all.indexOf(a.name) - all.indexOf(b.name)));
}

const md: string[] = [];
md.push('# Performance: Backstop beside Postfix 3.7');
md.push('');
md.push(`Generated by \`npm run bench\` (bench/run-all.ts) on ${started.toISOString()}, in ${((Date.now() - started.getTime()) / 60000).toFixed(1)} minutes. Do not edit by hand; rerun it.`);
if (opts.merge) md.push(`This page merges a rerun of ${chosen.join(', ')} into the previous full run (docs/perf/last-run.json); each section says when it finished.`);
md.push('Each benchmark waited for the 1-minute load average to fall under 0.5 (at most 3 minutes) and says what it was when it began; nothing else ran on the machine.');
md.push('');
md.push('Both servers run on the same machine in the same session, as the backup MX of `primary.test` with the seed\'s restrictions ' +
  '(client 127.0.0.1 not in `mynetworks`, `reject_unverified_recipient`, `permit_mx_backup`, verify cache `btree:`), DNS from dnsmasq on a ' +
  'loopback address (Postfix sees it through `/etc/resolv.conf` bind-mounted in a private mount namespace; Backstop through ' +
  '`backstop_dns_servers`), the primary MX is `smtp-sink` on 127.0.0.2:25, and the load comes from Postfix\'s `smtp-source` ' +
  '(plus our Node client for RCPT latency and idle connections). Postfix is an isolated instance (own `-c` config, queue, data and ' +
  'maillog folders, chroot off) started in its own cgroup; Backstop is `node bin/backstop.js start -c DIR` in its own cgroup. ' +
  'CPU is the cgroup\'s cpuacct total, memory the sum of the processes\' PSS. Figures are medians of the runs with (min–max); ' +
  'the servers take turns run by run, so the ratio of one session is what counts (the machine is shared and noisy).');
md.push('');
md.push('## Machine and versions');
md.push('');
md.push('| | |');
md.push('|---|---|');
md.push(`| CPU | ${m.cores} cores, ${m.cpu} |`);
md.push(`| memory | ${m.memoryGiB} GiB |`);
md.push(`| disk | ${m.disk} |`);
md.push(`| kernel | Linux ${m.kernel} |`);
md.push(`| Node.js | ${m.node} |`);
md.push(`| Backstop | ${m.backstop} |`);
md.push(`| Postfix | ${m.postfix} (Debian package; smtp-source/smtp-sink from the same package) |`);
md.push('');
md.push('Reproduce everything: `npm run bench` (as root; needs the `postfix` and `dnsmasq-base` packages). One scenario: the command under its table; ' +
  '`--runs`, `--messages` and the other options are listed in bench/README.md.');
md.push('');
const charts: string[] = [];
for (const o of outcomes) {
  if (o.report) {
    const r = o.report;
    md.push(`## ${r.title}`);
    md.push('');
    md.push(table(r));
    md.push('');
    for (const n of r.notes ?? []) md.push(`- ${n}`);
    if (r.notes?.length) md.push('');
    for (const c of r.charts ?? []) {
      md.push(`![${c.alt}](${c.file.replace(/^docs\//, '')})`);
      md.push('');
      charts.push(c.file);
    }
    md.push(`(${r.bench}: ${o.seconds.toFixed(0)} s, exit ${o.code}${began(o)}${o.at ? `, finished ${o.at}` : ''})`);
    md.push('');
  }
}
const others = outcomes.filter((o) => !o.report);
if (others.length) {
  md.push('## Component benchmarks (Backstop only)');
  md.push('');
  for (const o of others) {
    md.push(`### ${o.name}`);
    md.push('');
    md.push(`\`${o.command}\` — exit ${o.code}, ${o.seconds.toFixed(0)} s${began(o)}`);
    md.push('');
    md.push('```');
    md.push(o.output.trimEnd().split('\n').slice(-30).join('\n'));
    md.push('```');
    md.push('');
  }
}
mkdirSync(join(repoRoot, 'docs', 'perf'), { recursive: true });
const partial = (opts.only.length > 0 && !opts.merge) || opts.quick;
if (!partial) writeFileSync(lastRun, JSON.stringify({ started, machine: m, outcomes: outcomes.map((o) => ({ ...o, output: o.report ? undefined : o.output })) }, null, 1) + '\n');
const target = join(repoRoot, 'docs', partial && existsSync(join(repoRoot, 'docs', 'PERFORMANCE.md')) ? 'perf/PERFORMANCE-partial.md' : 'PERFORMANCE.md');
writeFileSync(target, md.join('\n'));
console.error(`wrote ${target}${charts.length ? ` and ${charts.join(', ')}` : ''}`);
process.exitCode = outcomes.every((o) => o.code === 0) ? 0 : 1;
