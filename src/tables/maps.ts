// TableList: Postfix's maps(3) — search a list of tables in order; the first table that has the
// key wins. Stays synchronous when every table answers synchronously.

import type { LookupResult, LookupTable, OpenTableOptions } from './types.js';
import { openTable } from './registry.js';

export interface MapsHit {
  value: string;
  table: LookupTable;
}

export class TableList {
  constructor(readonly tables: readonly LookupTable[]) {}

  /** Open each reference (e.g. the elements of `relay_recipient_maps`). */
  static open(refs: readonly string[], opts: OpenTableOptions = {}): TableList {
    const opened: LookupTable[] = [];
    try {
      for (const ref of refs) opened.push(openTable(ref, opts));
    } catch (err) {
      for (const t of opened) t.close();
      throw err;
    }
    return new TableList(opened);
  }

  /** The value from the first table that has the key, or undefined. */
  get(key: string): LookupResult | Promise<LookupResult> {
    const hit = this.find(key);
    if (hit instanceof Promise) return hit.then((h) => h?.value);
    return hit?.value;
  }

  /** Like get(), also naming the table that answered (for logs). */
  find(key: string): MapsHit | undefined | Promise<MapsHit | undefined> {
    for (let i = 0; i < this.tables.length; i++) {
      const v = this.tables[i].get(key);
      if (v instanceof Promise) return this.findAsync(key, i, v);
      if (v !== undefined) return { value: v, table: this.tables[i] };
    }
    return undefined;
  }

  private async findAsync(key: string, from: number, pending: Promise<LookupResult>): Promise<MapsHit | undefined> {
    const first = await pending;
    if (first !== undefined) return { value: first, table: this.tables[from] };
    for (let i = from + 1; i < this.tables.length; i++) {
      const v = await this.tables[i].get(key);
      if (v !== undefined) return { value: v, table: this.tables[i] };
    }
    return undefined;
  }

  close(): void {
    for (const t of this.tables) t.close();
  }
}
