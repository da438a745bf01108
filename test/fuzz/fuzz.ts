// A small seeded mutation fuzzer for the configuration and table parsers (issue 6). Inputs are
// random bytes or mutations of valid corpora (byte flips, inserts, deletes, splices, dictionary
// tokens, line duplication/shuffling). Each target runs in a worker thread; the main thread
// watches a shared heartbeat and terminates the worker when one input runs longer than the hang
// bound (V8 can interrupt a backtracking RegExp), then regenerates that input from the seed to
// report it. Budget: FUZZ_SECONDS (default 3) per target; FUZZ_SEED picks the run (default 1).
// Trusts nothing about the targets: any exception type other than a plain/domain Error is a failure.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

/** xorshift128+ style PRNG (32-bit parts), deterministic for a seed. */
export class Rng {
  private a: number;
  private b: number;
  constructor(seed: number) {
    this.a = (seed ^ 0x9e3779b9) >>> 0 || 1;
    this.b = (Math.imul(seed, 0x85ebca6b) ^ 0xc2b2ae35) >>> 0 || 2;
    for (let i = 0; i < 8; i++) this.next();
  }
  next(): number {
    let x = this.a;
    const y = this.b;
    this.a = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    this.b = x >>> 0;
    return (this.a + this.b) >>> 0;
  }
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 0x100000000 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

/** Seconds per target: FUZZ_SECONDS, default 3 (CI). */
export function fuzzSeconds(): number {
  const s = Number(process.env.FUZZ_SECONDS ?? '3');
  return Number.isFinite(s) && s > 0 ? s : 3;
}

export function fuzzSeed(): number {
  const s = Number(process.env.FUZZ_SEED ?? '1');
  return Number.isInteger(s) ? s : 1;
}

const BYTES = ' \t\n\r#=$,{}()[]:/\\!?*+.|^-"\'0123456789abcdefghijklmnopqrstuvwxyzABCXYZ\u0000\u00e9\u2028\ud800';

function randomText(rng: Rng, dict: readonly string[], max: number): string {
  let s = '';
  const n = rng.int(max);
  while (s.length < n) s += rng.chance(0.3) && dict.length ? rng.pick(dict) : BYTES[rng.int(BYTES.length)];
  return s;
}

/** One to eight random mutations of `input`. */
export function mutate(rng: Rng, input: string, dict: readonly string[], corpus: readonly string[]): string {
  let s = input;
  const rounds = 1 + rng.int(8);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(s.length + 1);
    switch (rng.int(9)) {
      case 0: // flip one character to a random code unit
        s = s.slice(0, at) + String.fromCharCode(rng.int(rng.chance(0.9) ? 128 : 0x10000)) + s.slice(at + 1);
        break;
      case 1: // insert random text
        s = s.slice(0, at) + randomText(rng, dict, 8) + s.slice(at);
        break;
      case 2: // delete a range
        s = s.slice(0, at) + s.slice(at + 1 + rng.int(16));
        break;
      case 3: // insert a dictionary token
        if (dict.length) s = s.slice(0, at) + rng.pick(dict) + s.slice(at);
        break;
      case 4: { // duplicate a range (long repeats find quadratic and backtracking paths)
        const len = 1 + rng.int(12);
        const piece = s.slice(at, at + len);
        s = s.slice(0, at) + piece.repeat(1 + rng.int(rng.chance(0.1) ? 200 : 4)) + s.slice(at);
        break;
      }
      case 5: { // splice with another corpus entry
        const other = rng.pick(corpus);
        const o = rng.int(other.length + 1);
        s = s.slice(0, at) + other.slice(o, o + rng.int(200));
        break;
      }
      case 6: { // shuffle/duplicate/drop lines
        const lines = s.split('\n');
        const i = rng.int(lines.length);
        const j = rng.int(lines.length);
        if (rng.chance(0.4)) [lines[i], lines[j]] = [lines[j], lines[i]];
        else if (rng.chance(0.5)) lines.splice(i, 0, lines[j]);
        else lines.splice(i, 1);
        s = lines.join('\n');
        break;
      }
      case 7: // start a continuation or comment at a random line start
        s = s.slice(0, at) + rng.pick(['\n ', '\n\t', '\n#', '\n', '\r\n']) + s.slice(at);
        break;
      default: // truncate
        s = s.slice(0, at);
    }
  }
  return s.length > 20_000 ? s.slice(0, 20_000) : s;
}

/** The input of iteration `i` of a run: a pure function of (seed, i). */
export function inputFor(seed: number, i: number, corpus: readonly string[], dict: readonly string[]): string {
  const rng = new Rng((Math.imul(seed, 0x27d4eb2d) ^ Math.imul(i + 1, 0x165667b1)) >>> 0);
  if (i < corpus.length) return corpus[i];
  if (rng.chance(0.1)) return randomText(rng, dict, 400);
  return mutate(rng, rng.pick(corpus), dict, corpus);
}

/** A fuzz target: `run` returns normally or throws; `problem` says what is wrong with the outcome, if anything. */
export interface FuzzTarget {
  corpus: readonly string[];
  dict: readonly string[];
  /** Called once in the worker before the loop (e.g. create a temp folder). */
  setup?(): void;
  teardown?(): void;
  run(input: string): void;
}

/** Exception types that are bugs when they escape our parsers. */
export function unexpectedType(err: unknown): string | undefined {
  if (!(err instanceof Error)) return `non-Error thrown: ${String(err)}`;
  if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError || err instanceof SyntaxError || err instanceof EvalError || err instanceof URIError)
    return `${err.constructor.name}: ${err.message}\n${err.stack?.split('\n').slice(1, 4).join('\n')}`;
  return undefined;
}

export interface FuzzFailure {
  iteration: number;
  input: string;
  problem: string;
}

export interface FuzzReport {
  target: string;
  seed: number;
  iterations: number;
  failures: FuzzFailure[];
}

/**
 * Run the target exported as `exportName` from module `moduleUrl` for `seconds` in a worker.
 * An input that runs longer than `hangMs` is reported as a hang.
 */
export function runFuzz(moduleUrl: string, exportName: string, opts: { seconds?: number; seed?: number; hangMs?: number } = {}): Promise<FuzzReport> {
  const seconds = opts.seconds ?? fuzzSeconds();
  const seed = opts.seed ?? fuzzSeed();
  const hangMs = opts.hangMs ?? 5000;
  const beat = new Int32Array(new SharedArrayBuffer(8)); // [iteration started, done flag]
  // Under tsx the worker needs the TypeScript loader too (workers do not inherit tsx's hooks).
  // The entry is a tiny script that registers tsx's ESM hooks in the worker, then imports this module.
  const me = JSON.stringify(import.meta.url);
  const entry = import.meta.url.endsWith('.ts') ? `import('tsx/esm/api').then((t) => { t.register(); return import(${me}); })` : `import(${me})`;
  const worker = new Worker(entry, { eval: true, workerData: { moduleUrl, exportName, seconds, seed, beat }, execArgv: [] });
  return new Promise((resolvePromise, reject) => {
    let last = -1;
    let lastChange = Date.now();
    let finished = false;
    const watch = setInterval(() => {
      const i = Atomics.load(beat, 0);
      if (i !== last) {
        last = i;
        lastChange = Date.now();
        return;
      }
      if (Date.now() - lastChange < hangMs) return;
      finished = true;
      clearInterval(watch);
      void worker.terminate();
      void (async () => {
        const mod = (await import(moduleUrl)) as Record<string, FuzzTarget>;
        const t = mod[exportName];
        resolvePromise({ target: exportName, seed, iterations: i, failures: [{ iteration: i, input: inputFor(seed, i, t.corpus, t.dict), problem: `hang: no result after ${hangMs} ms` }] });
      })().catch(reject);
    }, 100);
    worker.on('message', (report: FuzzReport) => {
      finished = true;
      clearInterval(watch);
      resolvePromise(report);
    });
    worker.on('error', (err) => {
      clearInterval(watch);
      if (!finished) reject(err);
    });
    worker.on('exit', (code) => {
      clearInterval(watch);
      if (!finished) reject(new Error(`fuzz worker exited with code ${code}`));
    });
  });
}

async function workerMain(): Promise<void> {
  const { moduleUrl, exportName, seconds, seed, beat } = workerData as { moduleUrl: string; exportName: string; seconds: number; seed: number; beat: Int32Array };
  const mod = (await import(moduleUrl)) as Record<string, FuzzTarget>;
  const t = mod[exportName];
  const failures: FuzzFailure[] = [];
  const seen = new Set<string>();
  t.setup?.();
  const end = Date.now() + seconds * 1000;
  let i = 0;
  try {
    for (; Date.now() < end || i < t.corpus.length; i++) {
      Atomics.store(beat, 0, i);
      const input = inputFor(seed, i, t.corpus, t.dict);
      let problem: string | undefined;
      try {
        t.run(input);
      } catch (err) {
        problem = unexpectedType(err) ?? (err as Error & { fuzzProblem?: string }).fuzzProblem;
      }
      if (problem) {
        const k = problem.split('\n')[0].replace(/"[^"]*"/g, '"…"');
        if (!seen.has(k) && failures.length < 20) {
          seen.add(k);
          failures.push({ iteration: i, input, problem });
        }
      }
    }
  } finally {
    t.teardown?.();
  }
  parentPort!.postMessage({ target: exportName, seed, iterations: i, failures } satisfies FuzzReport);
}

/** Thrown by targets when an outcome is wrong (e.g. an error without file and line). */
export class FuzzProblem extends Error {
  constructor(readonly fuzzProblem: string) {
    super(fuzzProblem);
  }
}

export function describeFailures(r: FuzzReport): string {
  return r.failures
    .map((f) => `${r.target} seed ${r.seed} iteration ${f.iteration}: ${f.problem}\n  input: ${JSON.stringify(f.input.length > 600 ? f.input.slice(0, 600) + '…' : f.input)}`)
    .join('\n');
}

if (!isMainThread && (workerData as { moduleUrl?: string } | null)?.moduleUrl) {
  void workerMain();
}
