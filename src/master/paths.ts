// Where the running system keeps its files: path parameters resolved against the configuration
// directory (Postfix resolves them against its installation; a relative path here means "beside
// main.cf"), and the master's pid file.

import { isAbsolute, join, resolve } from 'node:path';
import type { Config } from '../config/index.js';

/** Resolve a path parameter against the configuration directory when it is relative. */
export function configPath(config: Config, name: string): string {
  const v = config.str(name);
  return isAbsolute(v) ? v : resolve(config.dir, v);
}

export function pidFile(config: Config): string {
  return join(configPath(config, 'queue_directory'), 'pid', 'master.pid');
}
