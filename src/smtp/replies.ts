// Server replies as the SMTP client reads them: the reader cuts the byte stream into replies
// (multi-line replies end at the line "NNN text"; "NNN-" lines continue), and parseReply turns a
// reply into its code, enhanced status code and Postfix's one-line text. Trusts nothing from the
// peer: each line is cut at the line length limit, a reply keeps at most 100 lines, and a line
// without a newline cannot grow memory past the limit.

import { StringDecoder } from 'node:string_decoder';

export interface ServerReply {
  code: number;
  /** Enhanced status code from the reply, or derived from the code (X.0.0). */
  dsn: string;
  /** All lines joined with a space, each with its code, as Postfix logs them. */
  text: string;
  lines: string[];
}

const dsnRe = /^[245]\.\d{1,3}\.\d{1,3}$/;

/** Parses reply lines into a ServerReply. */
export function parseReply(lines: string[]): ServerReply {
  const last = lines[lines.length - 1] ?? '';
  const code = /^\d{3}/.test(last) ? Number(last.slice(0, 3)) : 0;
  const first = lines[0] ?? '';
  const m = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/.exec(first);
  const klass = String(code)[0];
  let dsn = m && dsnRe.test(m[1]) ? m[1] : '';
  if (!dsn || dsn[0] !== klass) dsn = /^[245]$/.test(klass) ? `${klass}.0.0` : '4.0.0';
  return { code, dsn, text: lines.join(' '), lines };
}

/** Reads replies off a socket; reset() drops everything read before STARTTLS. */
export class ReplyReader {
  private decoder = new StringDecoder('utf8');
  private partial = '';
  private lines: string[] = [];
  private replies: string[][] = [];
  /** Reads waiting for a reply, oldest first: with a message pipelined behind the previous one's end of data, two transactions wait on one session. */
  private readonly waiters: Waiter[] = [];
  private ended = false;
  private static readonly MAX_LINES = 100;

  constructor(private readonly lineLimit: number) {}

  feed(chunk: Buffer): void {
    let text = this.partial + this.decoder.write(chunk);
    let nl: number;
    while ((nl = text.indexOf('\n')) >= 0) {
      let line = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.line(line);
    }
    // An endless line without newline must not grow memory: keep only what the limit allows.
    this.partial = text.length > this.lineLimit ? text.slice(0, this.lineLimit) : text;
  }

  private line(raw: string): void {
    const line = raw.length > this.lineLimit ? raw.slice(0, this.lineLimit) : raw;
    if (this.lines.length < ReplyReader.MAX_LINES) this.lines.push(line);
    if (/^\d{3}-/.test(line)) return;
    const reply = this.lines;
    this.lines = [];
    const w = this.waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(reply);
    } else this.replies.push(reply);
  }

  end(err: Error): void {
    this.ended = true;
    this.endError = err;
    this.cancel(err);
  }
  private endError: Error | null = null;

  /** Drops any decoder state (after STARTTLS nothing from before may be used). */
  reset(): void {
    this.decoder = new StringDecoder('utf8');
    this.partial = '';
    this.lines = [];
    this.replies = [];
  }

  get pending(): number {
    return this.replies.length;
  }

  /**
   * The next reply; rejected with `timeout()` when none came within `ms` (that read alone: a
   * read queued behind it keeps waiting, and the caller closes the connection). The timer lives
   * in the waiter, not in a Promise.race beside it: four reads per message in a drain.
   */
  next(ms: number, timeout: () => Error): Promise<string[]> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.ended) return Promise.reject(this.endError!);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(timeout());
        }, ms),
      };
      this.waiters.push(w);
    });
  }

  cancel(err: Error): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}

interface Waiter {
  resolve: (r: string[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}
