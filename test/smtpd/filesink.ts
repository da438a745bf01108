// Test helper: a MessageSink that really writes each message to a file in a temporary folder,
// fsyncs the file and the folder, and only then resolves with its id — the contract the queue
// implements, without the queue. An error from the content stream leaves no file behind.

import { mkdtempSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Envelope } from '../../src/mail/index.js';
import type { MessageSink } from '../../src/smtpd/index.js';

export interface StoredMessage {
  id: string;
  envelope: Envelope;
  content: Buffer;
}

export class FileSink implements MessageSink {
  readonly dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  readonly messages: StoredMessage[] = [];
  /** When set, accept() fails with this error after reading the content. */
  failWith?: Error;

  newId(): string {
    return randomBytes(5).toString('hex').toUpperCase().slice(0, 10) + 'A';
  }

  async accept(envelope: Envelope, content: Readable | AsyncIterable<Buffer>, opts?: { queueId?: string }): Promise<string> {
    const id = opts?.queueId ?? this.newId();
    const tmp = join(this.dir, `${id}.tmp`);
    const fh = await open(tmp, 'w');
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of content as AsyncIterable<Buffer>) {
        const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
        chunks.push(b);
        await fh.write(b);
      }
      if (this.failWith) throw this.failWith;
      await fh.sync();
    } catch (err) {
      await fh.close();
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fh.close();
    await rename(tmp, join(this.dir, id));
    const d = await open(this.dir, 'r');
    await d.sync();
    await d.close();
    this.messages.push({ id, envelope, content: Buffer.concat(chunks) });
    return id;
  }

  files(): string[] {
    return readdirSync(this.dir);
  }

  read(id: string): Buffer {
    return readFileSync(join(this.dir, id));
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
