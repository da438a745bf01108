// The command-line reader in front of smtp-server's parser. smtp-server's SMTPStream splits
// commands on /\r?\n/ and loses the difference between CRLF and a bare LF, has no way to tell
// a handler that more input is already waiting (needed for smtpd_forbid_unauth_pipelining), and
// buffers an over-long line before failing the whole connection. This subclass replaces only the
// command mode of SMTPStream._write; DATA mode (the <CR><LF>.<CR><LF> terminator and
// dot-unstuffing) stays smtp-server's. Trusts nothing it reads.

import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

export interface LineInfo {
  /** The line ended in LF without CR. */
  bareLf: boolean;
  /** The line held more than the limit; `line` is its truncated start. */
  tooLong: boolean;
  /** More client input was already here when this line was handed over (pipelined). */
  pending: () => boolean;
  /** Up to 100 bytes of that pending input, for the log. */
  pendingBytes: () => Buffer;
}

export type LineHandler = (line: Buffer, info: LineInfo, next: () => void) => void;

const LF = 0x0a;
const CR = 0x0d;

export class CommandStream extends SMTPStream {
  private buf: Buffer = Buffer.alloc(0);
  /** Discarding the rest of an over-long line until its LF. */
  private discarding = false;
  private outerLen = 0;
  /** Bytes the socket still holds (set by the connection; the socket is piped into us). */
  socketPending: () => number = () => 0;
  online: LineHandler = (_l, _i, next) => next();
  /** A BDAT chunk being read: its bytes are data, never commands. */
  private chunk?: { left: number; onData: (b: Buffer) => void; onEnd: () => Promise<void> };
  /** Every byte received in command mode, counted (pre-greeting talk detection). */
  onBytes: (n: number) => void = () => undefined;

  constructor(private readonly maxLine: number) {
    super({ maxCommandLength: Number.MAX_SAFE_INTEGER });
  }

  /**
   * BDAT: the next n bytes go to onData as they arrive, whatever they hold; after the last one,
   * onEnd runs (the reply) before any further input is read as commands.
   */
  readChunk(n: number, onData: (b: Buffer) => void, onEnd: () => Promise<void>): void {
    this.chunk = { left: n, onData, onEnd };
  }

  override _write(chunk: Buffer, encoding: BufferEncoding | 'buffer', next: (err?: Error | null) => void): void {
    const state = (this as unknown as { _writableState?: { onwrite?: unknown } })._writableState;
    // Remember the size of the chunk the Writable machinery handed us: input queued behind it is
    // writableLength minus that. (smtp-server re-enters _write with the rest after DATA.)
    if (state && next === state.onwrite) this.outerLen = chunk ? chunk.length : 0;
    if (this._dataMode) return super._write(chunk, encoding, next);
    if (!chunk || !chunk.length) return next();
    if (this.isClosed) return next();
    this.onBytes(chunk.length);
    const self = this as unknown as { writableLength: number };
    let data = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.buf = Buffer.alloc(0);
    let pos = 0;

    const step = (): void => {
      for (;;) {
        if (this.isClosed) return next();
        if (this.chunk) {
          const ch = this.chunk;
          const take = Math.min(ch.left, data.length - pos);
          if (take > 0) {
            ch.onData(Buffer.from(data.subarray(pos, pos + take)));
            pos += take;
            ch.left -= take;
          }
          if (ch.left > 0) return next();
          this.chunk = undefined;
          const resume = () => setImmediate(step);
          ch.onEnd().then(resume, resume);
          return;
        }
        if (this._dataMode) {
          const rest = data.subarray(pos);
          return rest.length ? super._write(rest, 'buffer', next) : next();
        }
        const lf = data.indexOf(LF, pos);
        if (lf < 0) {
          const rest = data.subarray(pos);
          if (this.discarding) return next();
          if (rest.length > this.maxLine) {
            // Keep the start, drop the rest until the LF: memory stays bounded.
            this.buf = Buffer.from(rest.subarray(0, this.maxLine));
            this.discarding = true;
          } else {
            this.buf = Buffer.from(rest);
          }
          return next();
        }
        let end = lf;
        const bareLf = !(end > pos && data[end - 1] === CR);
        if (!bareLf) end--;
        const start = pos;
        pos = lf + 1;
        let line: Buffer;
        let tooLong = false;
        if (this.discarding) {
          this.discarding = false;
          line = this.buf.length ? this.buf : data.subarray(start, Math.min(end, start + this.maxLine));
          tooLong = true;
          this.buf = Buffer.alloc(0);
        } else {
          line = data.subarray(start, end);
          if (line.length > this.maxLine) {
            line = line.subarray(0, this.maxLine);
            tooLong = true;
          }
        }
        const restAt = pos;
        const info: LineInfo = {
          bareLf,
          tooLong,
          pending: () => restAt < data.length || self.writableLength > this.outerLen || this.socketPending() > 0,
          pendingBytes: () => Buffer.from(data.subarray(restAt, restAt + 100)),
        };
        let sync = true;
        let called = false;
        this.online(Buffer.from(line), info, () => {
          if (called) return;
          called = true;
          if (sync) return;
          setImmediate(step);
        });
        sync = false;
        if (!called) return; // the handler continues asynchronously
      }
    };
    step();
  }
}
