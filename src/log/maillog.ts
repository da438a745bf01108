// Postfix's maillog line format: `Mon DD HH:MM:SS host backstop/service[pid]: text`, written to
// `maillog_file` (Postfix 3.4's parameter) or to standard output when that is unset.
// `warning:`, `error:`, `fatal:` prefixes are used as Postfix uses them. Trusts its callers for
// the text; it only adds the prefix and the time. Lines can also be observed in-process (tests,
// `backstop check`), which is how log formats get tested.

import { createWriteStream, mkdirSync, openSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { hostname as osHostname } from 'node:os';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export type Severity = 'info' | 'warning' | 'error' | 'fatal';

export interface LogRecord {
  time: Date;
  service: string;
  severity: Severity;
  /** The text after `service[pid]: `, including any `warning: ` prefix. */
  text: string;
  /** The whole formatted line, without newline. */
  line: string;
}

export type LogSink = (rec: LogRecord) => void;

function pad2(n: number): string {
  return n < 10 ? '0' + n : String(n);
}

/** Syslog-style time stamp, e.g. "Nov  5 09:03:07" (day padded with a space, as syslog does). */
export function syslogTime(d: Date): string {
  const day = d.getDate();
  return `${MONTHS[d.getMonth()]} ${day < 10 ? ' ' + day : day} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

export class Maillog {
  private stream: WriteStream | null = null;
  private path: string | undefined;
  private toStdout = true;
  private readonly sinks = new Set<LogSink>();
  private host = osHostname().split('.')[0] || 'localhost';
  /** Name before the slash, Postfix's `syslog_name`. */
  syslogName = 'backstop';

  /** Send lines to `file` (appending), or to standard output when `file` is empty; quiet = neither. */
  open(file: string | undefined, opts: { quiet?: boolean; hostname?: string } = {}): void {
    this.close();
    if (opts.hostname) this.host = opts.hostname.split('.')[0];
    this.path = file || undefined;
    if (file) {
      mkdirSync(dirname(file), { recursive: true });
      this.stream = createWriteStream(file, { flags: 'a' });
      this.toStdout = false;
    } else {
      this.toStdout = !opts.quiet;
    }
  }

  /**
   * Postfix's `postfix logrotate` / SIGUSR1: open maillog_file again by name (it was renamed) and
   * write every later line there. No line is lost: the old stream is ended only after the new one
   * took over, and what it still buffers goes to the renamed file.
   */
  reopen(): void {
    const old = this.stream;
    if (!old || !this.path) return;
    let fd: number;
    try {
      // Opened here and now (not in the background), so a failure keeps the old file in use.
      fd = openSync(this.path, 'a', 0o600);
    } catch (err) {
      this.write('master', 'warning', `cannot reopen ${this.path}: ${(err as Error).message}; still writing to the old file`);
      return;
    }
    this.stream = createWriteStream(this.path, { fd });
    old.end();
  }

  /** Stop writing to the file; resolves once every line written so far is in it. */
  close(): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    return new Promise((resolve) => (stream ? stream.end(resolve) : resolve()));
  }

  addSink(sink: LogSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  write(service: string, severity: Severity, text: string): void {
    const prefix = severity === 'info' ? '' : `${severity}: `;
    const time = new Date();
    const body = prefix + text;
    const line = `${syslogTime(time)} ${this.host} ${this.syslogName}/${service}[${process.pid}]: ${body}`;
    if (this.stream) this.stream.write(line + '\n');
    else if (this.toStdout) process.stdout.write(line + '\n');
    for (const sink of this.sinks) sink({ time, service, severity, text: body, line });
  }

  logger(service: string): Logger {
    return new Logger(this, service);
  }
}

export class Logger {
  constructor(private readonly log: Maillog, readonly service: string) {}
  info(text: string): void { this.log.write(this.service, 'info', text); }
  warning(text: string): void { this.log.write(this.service, 'warning', text); }
  error(text: string): void { this.log.write(this.service, 'error', text); }
  fatal(text: string): void { this.log.write(this.service, 'fatal', text); }
}

/** The process-wide maillog. Services take a Logger from it; tests add sinks to observe lines. */
export const maillog = new Maillog();
