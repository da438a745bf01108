// Knowledge the configuration validator needs from the modules above it: which table types exist
// and how restriction lists parse. Kept here, in the master, so `config` stays at the bottom.

import { validateConfig, type Diagnostic, type LoadedConfig } from '../config/index.js';
import { TABLE_TYPES } from '../tables/index.js';

export async function validateAll(loaded: LoadedConfig): Promise<Diagnostic[]> {
  return validateConfig(loaded, { tableTypes: TABLE_TYPES });
}
