// The lookup table contract shared by every table type. A table answers `get(key)` with the value
// or undefined; tables that can answer synchronously (all local types) return a plain value so the
// hot path pays no Promise overhead, remote types may return a Promise. Trusts nothing about keys.

export type LookupResult = string | undefined;

export interface LookupTable {
  /** The reference as written, e.g. `hash:/etc/backstop/access`. */
  readonly ref: string;
  /** The table type, e.g. `hash`. */
  readonly type: string;
  /** Look up one key. Throws (or rejects) on a table error, e.g. a reloaded file that no longer parses. */
  get(key: string): LookupResult | Promise<LookupResult>;
  /** Every element in table order (texthash, inline, hash/btree/lmdb); undefined when the type cannot be listed. */
  entries?(): Iterable<[string, string]>;
  close(): void;
}

export interface OpenTableOptions {
  /** Relative table paths resolve against this directory (the config directory). Default: process.cwd(). */
  baseDir?: string;
  /** Receives Postfix-style warnings (e.g. `duplicate entry`). Default: ignore. */
  warn?: (message: string) => void;
  /** Minimum milliseconds between two stat() checks for a changed file. Default 1000. */
  checkIntervalMs?: number;
}

/** A table type's opener: `name` is the part after `type:`. */
export type TableOpener = (type: string, name: string, ref: string, opts: OpenTableOptions) => LookupTable;
