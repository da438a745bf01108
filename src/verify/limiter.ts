// Probe concurrency per destination: at most `limit` probes in flight for one destination (the
// primary must not be flooded); the rest wait in FIFO order — a probe storm queues, it does not
// fail. Trusts its callers to release what they acquired.

export class DestinationLimiter {
  private readonly active = new Map<string, number>();
  private readonly waiting = new Map<string, Array<() => void>>();
  /** Highest number of probes in flight at once for any destination (benchmarks, tests). */
  peak = 0;

  constructor(readonly limit: number) {
    if (!(limit >= 1)) throw new Error(`backstop_verify_probe_concurrency: must be 1 or more, got ${limit}`);
  }

  async run<T>(destination: string, fn: () => Promise<T>): Promise<T> {
    await this.acquire(destination);
    try {
      return await fn();
    } finally {
      this.release(destination);
    }
  }

  private acquire(d: string): Promise<void> | void {
    const n = this.active.get(d) ?? 0;
    if (n < this.limit) {
      this.active.set(d, n + 1);
      if (n + 1 > this.peak) this.peak = n + 1;
      return;
    }
    return new Promise((resolve) => {
      const q = this.waiting.get(d) ?? [];
      q.push(resolve);
      this.waiting.set(d, q);
    });
  }

  private release(d: string): void {
    const q = this.waiting.get(d);
    if (q && q.length) {
      // Hand the slot straight to the next waiter: the count stays the same.
      const next = q.shift()!;
      if (q.length === 0) this.waiting.delete(d);
      next();
      return;
    }
    const n = (this.active.get(d) ?? 1) - 1;
    if (n <= 0) this.active.delete(d);
    else this.active.set(d, n);
  }

  /** Probes in flight or waiting for one destination. */
  load(destination: string): number {
    return (this.active.get(destination) ?? 0) + (this.waiting.get(destination)?.length ?? 0);
  }
}
