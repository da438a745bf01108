// What every queue transaction shares, whatever it writes to (files: writer.ts; PostgreSQL:
// pg/transaction.ts): the replies for its failures, the size limit, the Message-ID scan of the
// header, reading the client's content to its end after a failure, and the index entry of a
// committed message. Trusts its callers for the content (CRLF lines, dot-unstuffed).

import { reply, SmtpError, type Envelope } from '../mail/index.js';
import { defaultRetry, findMessageId, type QueueName } from './file.js';
import type { QueueEntry } from './entry.js';

export const ERR_STORAGE = () => reply(452, '4.3.1', 'Insufficient system storage');
export const ERR_WRITE = () => reply(451, '4.3.0', 'Error: queue file write error');
export const ERR_TOO_BIG = () => reply(552, '5.3.4', 'Message file too big');

/** Throws 552 5.3.4 once `size` bytes of content exceed message_size_limit (`limit`; 0 = none). */
export function checkSize(size: number, limit: number): void {
  if (limit > 0 && size > limit) throw new SmtpError(ERR_TOO_BIG(), `message size ${size} exceeds message_size_limit ${limit}`);
}

const HEADER_SCAN_LIMIT = 65536;
const CRLF = Buffer.from('\r\n');

/** Finds the Message-ID in the header, chunk by chunk, until its end (or 64 KB of it). */
export class MessageIdScan {
  private chunks: Buffer[] | null = [];
  private bytes = 0;
  private found: string | undefined;

  push(chunk: Buffer): void {
    if (!this.chunks) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    const joined = Buffer.concat(this.chunks);
    const endOfHeader = joined.subarray(0, 2).equals(CRLF) ? 0 : joined.indexOf('\r\n\r\n');
    if (endOfHeader >= 0 || this.bytes >= HEADER_SCAN_LIMIT) {
      this.found = findMessageId(joined.subarray(0, endOfHeader >= 0 ? endOfHeader + 2 : joined.length));
      this.chunks = null;
    } else this.chunks = [joined];
  }

  /** The Message-ID (undefined when the header has none); the content has ended. */
  finish(): string | undefined {
    if (this.chunks) this.found = findMessageId(Buffer.concat(this.chunks));
    this.chunks = null;
    return this.found;
  }
}

/**
 * Feed every chunk of `content` to `each`; after the first failure the rest is still read (the
 * client's DATA stream must be consumed) but no longer fed. Returns that failure, or null; a
 * stream that errors counts as one (the client went away, or the caller destroyed it).
 */
export async function consume(
  content: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  each: (chunk: Buffer) => void | Promise<void>,
  failure: unknown = null,
): Promise<unknown> {
  try {
    for await (const raw of content as AsyncIterable<Buffer | string>) {
      if (failure) continue;
      try {
        await each(typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw);
      } catch (err) {
        failure = err;
      }
    }
  } catch (err) {
    failure ??= err;
  }
  return failure;
}

/** The index entry of a message just committed into `queue`, every recipient pending. */
export function committedEntry(id: string, queue: QueueName, env: Envelope, messageSize: number, fileSize: number): QueueEntry {
  return {
    id,
    queue,
    arrivalTime: env.arrivalTime,
    messageSize,
    sender: env.sender,
    recipients: env.recipients.map((r) => r.address),
    status: 'P'.repeat(env.recipients.length),
    retry: defaultRetry(),
    fileSize,
    journalOffset: fileSize,
  };
}
