// Progress for long commands (verify warm over thousands of addresses, postsuper ALL on a big
// queue): a cli-progress bar on standard error when it is a terminal, nothing at all otherwise (a
// pipe or a log file gets only the final summary). The bar redraws at most 10 times a second and
// is erased when done, so the summary line that follows stands alone.

import { SingleBar } from 'cli-progress';

export interface Progress {
  /** Count `n` more done; `payload` fills the format's {name} fields. */
  tick(n?: number, payload?: Record<string, string | number>): void;
  setTotal(total: number): void;
  stop(): void;
}

const QUIET: Progress = { tick: () => undefined, setTotal: () => undefined, stop: () => undefined };

export interface ProgressOptions {
  /** Where the bar goes (standard error). */
  write: (s: string) => void;
  /** Show it: standard error is a terminal. */
  tty: boolean;
  /** Terminal width (default process.stderr.columns, else 80). */
  columns?: number;
  /** cli-progress format; {bar} {value} {total} {percentage} {eta_formatted} and payload names. */
  format: string;
  /** 0: not known yet (the bar then shows counts only until setTotal). */
  total: number;
  payload?: Record<string, string | number>;
}

export function startProgress(o: ProgressOptions): Progress {
  if (!o.tty) return QUIET;
  // A minimal terminal stream around the command's stderr function (cli-progress writes escape
  // sequences through readline's helpers, which only call write()).
  const stream = { isTTY: true, columns: o.columns ?? process.stderr.columns ?? 80, write: (s: string) => (o.write(s), true) } as unknown as NodeJS.WriteStream;
  const bar = new SingleBar({
    stream,
    format: o.format,
    fps: 10,
    hideCursor: true,
    clearOnComplete: true,
    stopOnComplete: false,
    gracefulExit: false,
    noTTYOutput: true,
    etaBuffer: 50,
  });
  bar.start(o.total, 0, o.payload ?? {});
  return {
    tick: (n = 1, payload) => bar.increment(n, payload),
    setTotal: (total) => bar.setTotal(total),
    stop: () => bar.stop(),
  };
}
