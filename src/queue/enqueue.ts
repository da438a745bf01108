// A whole message into the queue in one call, for mail whose fate is known before its content is
// written (bounces and delay notices the queue manager makes, benchmarks, tests): begin → write →
// commit, aborting on any failure so no file or reserved id is left behind. smtpd does not use
// it: it learns HOLD/DISCARD only at end of data, so it drives the transaction itself.

import type { Envelope } from '../mail/index.js';
import type { BeginOptions, CommitOptions, QueueTransaction } from './writer.js';

export async function enqueue(queue: { begin(env: Envelope, opts?: BeginOptions): QueueTransaction }, envelope: Envelope, content: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, opts: CommitOptions = {}): Promise<string> {
  const tx = queue.begin(envelope);
  try {
    await tx.write(content);
    return await tx.commit(opts);
  } catch (err) {
    await tx.abort();
    throw err;
  }
}
