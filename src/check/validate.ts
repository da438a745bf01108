// The full start-up check: the same problems `backstop check` reports (validation with table types
// and restriction parsing, every table opened, a trial engine load, the backup-MX lint), so
// `backstop start` and a SIGHUP reload refuse exactly what `backstop check` calls an error.

import type { Diagnostic, LoadedConfig } from '../config/index.js';
import { checkConfig } from './check.js';

/** Every diagnostic except the loader's own (the caller has those already). */
export async function validateAll(loaded: LoadedConfig): Promise<Diagnostic[]> {
  const own = new Set(loaded.diagnostics);
  return checkConfig(loaded).filter((d) => !own.has(d));
}
