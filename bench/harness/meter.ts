// CPU and memory accounting for one server under test (a Postfix instance: master and every
// daemon it forks; or the Backstop process). With cgroup v1's cpuacct controller mounted, the
// server is started inside its own cgroup, so CPU time counts every process it ever ran,
// exited ones included. Without it, a /proc walk from a root pid: utime+stime+cutime+cstime of
// the root and its live descendants (an exited child's time lands in its parent's cutime).
// Memory is the sum of the processes' PSS (proportional set size: shared pages divided among
// the sharers, so 100 smtpd processes sharing libc are not counted 100 times), sampled.
// Trusts the kernel's /proc and /sys/fs/cgroup files; creates and removes only its own cgroup.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from './proc.js';

const CPUACCT = '/sys/fs/cgroup/cpuacct';
const TICK = 100; // USER_HZ on Linux

export interface MemorySample {
  /** Sum of PSS over the processes, bytes. */
  pss: number;
  /** Sum of RSS, bytes (counts shared pages once per process). */
  rss: number;
  processes: number;
}

export interface Meter {
  /** 'cgroup' (exact) or 'proc' (walk from the root pids). */
  readonly method: 'cgroup' | 'proc';
  /** Command and arguments that start `cmd args` already inside this meter's cgroup. */
  wrap(cmd: string, args: string[]): { cmd: string; args: string[] };
  /** For the /proc method: the pid whose process tree is the server (added after start). */
  addRoot(pid: number): void;
  /** Total CPU seconds (user + system) consumed so far. */
  cpuSeconds(): number;
  /** The live processes. */
  pids(): number[];
  memory(): MemorySample;
  /** Samples memory every intervalMs until the returned stop() is called; stop() gives the peak. */
  sampleMemory(intervalMs?: number): { stop(): Promise<MemorySample> };
  /** Removes the cgroup (once its processes are gone). */
  close(): Promise<void>;
}

function cgroupUsable(): boolean {
  return existsSync(join(CPUACCT, 'cgroup.procs')) && existsSync(join(CPUACCT, 'cpuacct.usage'));
}

function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from #3 (state) on
  } catch { return undefined; }
}

/** Children map of every live process (ppid → pids). */
function childrenMap(): Map<number, number[]> {
  const m = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (!f) continue;
    const ppid = Number(f[1]);
    const list = m.get(ppid) ?? [];
    list.push(Number(name));
    m.set(ppid, list);
  }
  return m;
}

function memoryOf(pids: number[]): MemorySample {
  let pss = 0, rss = 0, n = 0;
  for (const pid of pids) {
    try {
      const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      const p = /^Pss:\s+(\d+) kB/m.exec(t);
      const r = /^Rss:\s+(\d+) kB/m.exec(t);
      if (!p || !r) continue;
      pss += Number(p[1]) * 1024;
      rss += Number(r[1]) * 1024;
      n++;
    } catch { /* exited meanwhile, or a kernel thread */ }
  }
  return { pss, rss, processes: n };
}

let seq = 0;

export function createMeter(label: string): Meter {
  const roots: number[] = [];
  const proc = {
    pids(): number[] {
      const kids = childrenMap();
      const out: number[] = [];
      const stack = roots.filter((p) => existsSync(`/proc/${p}`));
      while (stack.length) {
        const p = stack.pop()!;
        out.push(p);
        stack.push(...(kids.get(p) ?? []));
      }
      return out;
    },
    cpu(): number {
      let ticks = 0;
      for (const pid of proc.pids()) {
        const f = statFields(pid);
        if (f) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      }
      return ticks / TICK;
    },
  };
  const makeSampler = (get: () => number[]) => (intervalMs = 250) => {
    let peak: MemorySample = { pss: 0, rss: 0, processes: 0 };
    let running = true;
    const loop = (async () => {
      while (running) {
        const m = memoryOf(get());
        if (m.pss > peak.pss) peak = m;
        await sleep(intervalMs);
      }
    })();
    return { async stop() { running = false; await loop; const m = memoryOf(get()); if (m.pss > peak.pss) peak = m; return peak; } };
  };

  if (cgroupUsable()) {
    const dir = join(CPUACCT, `backstop-bench-${label.replace(/[^A-Za-z0-9_-]/g, '_')}-${process.pid}-${++seq}`);
    mkdirSync(dir);
    const pids = () => {
      try { return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number); } catch { return []; }
    };
    return {
      method: 'cgroup',
      wrap: (cmd, args) => ({ cmd: 'sh', args: ['-c', `echo $$ > '${dir}/cgroup.procs' && exec "$@"`, 'sh', cmd, ...args] }),
      addRoot: (pid) => { roots.push(pid); },
      cpuSeconds: () => Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8').trim()) / 1e9,
      pids,
      memory: () => memoryOf(pids()),
      sampleMemory: makeSampler(pids),
      async close() {
        for (let i = 0; i < 100; i++) {
          try { rmdirSync(dir); return; } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
            await sleep(50);
          }
        }
        throw new Error(`meter: cgroup ${dir} still has processes: ${pids().join(' ')}`);
      },
    };
  }
  return {
    method: 'proc',
    wrap: (cmd, args) => ({ cmd, args }),
    addRoot: (pid) => { roots.push(pid); },
    cpuSeconds: () => proc.cpu(),
    pids: () => proc.pids(),
    memory: () => memoryOf(proc.pids()),
    sampleMemory: makeSampler(() => proc.pids()),
    async close() { /* nothing to remove */ },
  };
}
