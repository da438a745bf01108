// Answer cache for the resolver: a size-bounded LRU whose entries expire at a deadline,
// plus an in-flight map so that concurrent identical queries share one lookup.
// Trusts its caller for keys, values and lifetimes; knows nothing about DNS.

export class TtlLru<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    // Refresh recency: Map keeps insertion order, so re-insert at the end.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Keep `value` for `ttlMs`; a ttl of 0 or less (or a zero-sized cache) stores nothing. */
  set(key: string, value: V, ttlMs: number): void {
    if (this.maxEntries <= 0 || ttlMs <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { value, expires: this.now() + ttlMs });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Run `fn` once per key at a time: callers asking while it runs get the same promise. */
export class InFlight<V> {
  private readonly pending = new Map<string, Promise<V>>();

  get size(): number {
    return this.pending.size;
  }

  run(key: string, fn: () => Promise<V>): Promise<V> {
    const existing = this.pending.get(key);
    if (existing) return existing;
    const p = fn().finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }
}
