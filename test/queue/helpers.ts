// Shared fixtures for the queue tests: a fresh spool folder, envelopes, content and a log sink.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Maillog } from '../../src/log/index.js';
import type { Envelope } from '../../src/mail/index.js';

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(tmpdir() + '/backstop-');
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function envelope(over: Partial<Envelope> = {}): Envelope {
  return {
    sender: 'sender@client.test',
    recipients: [{ address: 'user@primary.test' }],
    client: { name: 'localhost', address: '127.0.0.1', helo: 'client.test', protocol: 'ESMTP' },
    arrivalTime: Date.UTC(2026, 10, 24, 19, 1, 42),
    ...over,
  };
}

export function message(body = 'Hello.\r\n', headers = 'Subject: test\r\nMessage-ID: <m1@client.test>\r\n'): Buffer {
  return Buffer.from(headers + '\r\n' + body);
}

export async function* chunks(...bufs: Buffer[]): AsyncGenerator<Buffer> {
  for (const b of bufs) yield b;
}

export async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(c);
  return Buffer.concat(out);
}

/** A quiet Maillog whose lines are kept for assertions. */
export function quietLog(): { log: Maillog; lines: string[] } {
  const log = new Maillog();
  log.open(undefined, { quiet: true });
  const lines: string[] = [];
  log.addSink((r) => lines.push(`${r.service}: ${r.text}`));
  return { log, lines };
}
