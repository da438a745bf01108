// Where the running system keeps its files: path parameters resolved against the configuration
// directory (Postfix resolves them against its installation; a relative path here means "beside
// main.cf"), the master's pid file, and the maillog every process of the system writes to.

import { isAbsolute, join, resolve } from 'node:path';
import type { Config } from '../config/index.js';
import { maillog } from '../log/index.js';

/** Resolve a path parameter against the configuration directory when it is relative. */
export function configPath(config: Config, name: string): string {
  const v = config.str(name);
  return isAbsolute(v) ? v : resolve(config.dir, v);
}

export function pidFile(config: Config): string {
  return join(configPath(config, 'queue_directory'), 'pid', 'master.pid');
}

/** maillog_file as a path; undefined means standard output. */
export function maillogPath(config: Config): string | undefined {
  return config.str('maillog_file') ? configPath(config, 'maillog_file') : undefined;
}

/** Open the maillog as main.cf says (maillog_file, else standard output; syslog_name). */
export function openMaillog(config: Config): void {
  maillog.syslogName = config.str('syslog_name') || 'backstop';
  maillog.open(maillogPath(config), { hostname: config.str('myhostname') });
}

/** The master's `smtpd listening on HOST:PORT` lines, once the listeners answer. */
export function logListening(addresses: Array<{ host: string; port: number }>): void {
  for (const a of addresses) maillog.logger('master').info(`smtpd listening on ${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`);
}
