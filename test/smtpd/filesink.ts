// Test helper: a MessageSink whose transactions really write each message to a file in a
// temporary folder and, at commit, fsync the file and the folder before resolving with its id —
// the contract the queue implements, without the queue. A failed write or an abort leaves no file.

import { mkdtempSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Envelope } from '../../src/mail/index.js';
import type { MessageSink, MessageTransaction } from '../../src/smtpd/index.js';

export interface StoredMessage {
  id: string;
  envelope: Envelope;
  content: Buffer;
}

export class FileSink implements MessageSink {
  readonly dir = mkdtempSync(join(tmpdir(), 'backstop-'));
  readonly messages: StoredMessage[] = [];
  /** When set, commit() fails with this error (after the content was read). */
  failWith?: Error;

  begin(envelope: Envelope): MessageTransaction {
    const id = randomBytes(5).toString('hex').toUpperCase().slice(0, 10) + 'A';
    const tmp = join(this.dir, `${id}.tmp`);
    const chunks: Buffer[] = [];
    let fh: FileHandle | undefined;
    let done = false;
    const abort = async (): Promise<void> => {
      if (done) return;
      done = true;
      await fh?.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
    };
    return {
      id,
      write: async (content) => {
        fh ??= await open(tmp, 'w');
        try {
          for await (const chunk of content) {
            const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
            chunks.push(b);
            await fh.write(b);
          }
        } catch (err) {
          await abort();
          throw err;
        }
      },
      commit: async () => {
        if (this.failWith) {
          await abort();
          throw this.failWith;
        }
        fh ??= await open(tmp, 'w');
        await fh.sync();
        await fh.close();
        done = true;
        await rename(tmp, join(this.dir, id));
        const d = await open(this.dir, 'r');
        await d.sync();
        await d.close();
        this.messages.push({ id, envelope, content: Buffer.concat(chunks) });
        return id;
      },
      abort,
    };
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
