// `backstop logrotate`, Postfix 3.4's `postfix logrotate`: rename maillog_file to
// maillog_file.SUFFIX (maillog_file_rotate_suffix, strftime-style, default %Y%m%d-%H%M%S) and tell
// the master to reopen it (SIGUSR1), which tells every worker. No line is lost: until a process
// reopens, its lines still go to the renamed file (the same open file). Postfix also compresses
// the old file (maillog_file_compressor); Backstop leaves that to the administrator's tools.

import { existsSync, renameSync } from 'node:fs';
import { loadConfig } from '../config/index.js';
import { maillogPath } from './paths.js';
import { runningPid } from './master.js';

/** strftime's %Y %m %d %H %M %S (and %%), in local time as Postfix uses. */
export function strftime(format: string, d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const fields: Record<string, string> = { Y: String(d.getFullYear()), m: p(d.getMonth() + 1), d: p(d.getDate()), H: p(d.getHours()), M: p(d.getMinutes()), S: p(d.getSeconds()), '%': '%' };
  return format.replace(/%(.)/g, (all, c: string) => fields[c] ?? all);
}

export async function rotateMaillog(configDir: string, stderr: (s: string) => void, now = new Date()): Promise<number> {
  const { config } = loadConfig(configDir);
  const file = maillogPath(config);
  if (!file) {
    stderr('backstop: fatal: logrotate: maillog_file is not set: the log goes to standard output (journald under systemd)\n');
    return 1;
  }
  const pid = runningPid(config);
  if (!pid) {
    stderr('backstop: fatal: the Backstop mail system is not running\n');
    return 1;
  }
  const suffix = strftime(config.str('maillog_file_rotate_suffix') || '%Y%m%d-%H%M%S', now);
  const target = `${file}.${suffix}`;
  if (existsSync(target)) {
    stderr(`backstop: fatal: logrotate: ${target} exists already\n`);
    return 1;
  }
  if (existsSync(file)) renameSync(file, target);
  process.kill(pid, 'SIGUSR1');
  stderr(`backstop: ${file} rotated to ${target}\n`);
  return 0;
}
