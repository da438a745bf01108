// Counts over the last hour, one bucket per minute and label: what happened "in the last hour"
// without keeping every event. Bounded: 60 buckets, each a small map of labels.

const MINUTE = 60_000;
const BUCKETS = 60;

export class HourWindow {
  private readonly buckets: Array<{ minute: number; counts: Map<string, number> }> = [];

  constructor(private readonly now: () => number = Date.now) {}

  add(label: string, n = 1): void {
    const minute = Math.floor(this.now() / MINUTE);
    let b = this.buckets[this.buckets.length - 1];
    if (!b || b.minute !== minute) {
      b = { minute, counts: new Map() };
      this.buckets.push(b);
      while (this.buckets.length > BUCKETS) this.buckets.shift();
    }
    b.counts.set(label, (b.counts.get(label) ?? 0) + n);
  }

  /** Totals per label over the last 60 minutes. */
  totals(): Record<string, number> {
    const since = Math.floor(this.now() / MINUTE) - BUCKETS + 1;
    const out: Record<string, number> = {};
    for (const b of this.buckets) {
      if (b.minute < since) continue;
      for (const [k, n] of b.counts) out[k] = (out[k] ?? 0) + n;
    }
    return out;
  }
}
