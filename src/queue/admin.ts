// postsuper's operations on a Queue: delete, hold, release, requeue — by queue ID or ALL, limited
// to a list of queues, with Postfix's default queues per operation. Used both by the server's
// control-socket handlers (through the running Queue) and by the commands in direct mode (a Queue
// opened under the lock). Trusts the Queue for durability; checks IDs and queue names itself.

import { readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Queue } from './queue.js';
import type { QueueName } from './file.js';
import { isValidQueueId } from './id.js';

export type AdminOp = 'delete' | 'hold' | 'release' | 'requeue';

export interface AdminSelection {
  /** Queue IDs, or 'ALL'. */
  ids: string[] | 'ALL';
  /** Queues to look in; the operation's defaults when absent or empty. */
  queues?: QueueName[];
}

export interface AdminResult {
  /** IDs the operation applied to, in order. */
  ids: string[];
  /** Number of messages affected (corrupt files deleted with ALL count too). */
  count: number;
}

/** Postfix's default queues: -d and -r look everywhere, -h in the queues a message can be held from, -H in hold. */
export const ADMIN_DEFAULT_QUEUES: Readonly<Record<AdminOp, readonly QueueName[]>> = {
  delete: ['hold', 'active', 'deferred'],
  requeue: ['hold', 'active', 'deferred'],
  hold: ['active', 'deferred'],
  release: ['hold'],
};

/** Log text per operation, as postsuper prints `ID: <text>`. */
export const ADMIN_DONE_TEXT: Record<AdminOp, string> = {
  delete: 'removed',
  hold: 'placed on hold',
  release: 'released from hold',
  requeue: 'requeued',
};

export async function applyAdmin(queue: Queue, op: AdminOp, sel: AdminSelection): Promise<AdminResult> {
  const queues = sel.queues && sel.queues.length ? sel.queues : ADMIN_DEFAULT_QUEUES[op];
  const result: AdminResult = { ids: [], count: 0 };
  const targets: string[] = [];
  if (sel.ids === 'ALL') {
    for (const q of queues) for (const e of queue.list(q)) targets.push(e.id);
  } else {
    for (const id of sel.ids) {
      if (!isValidQueueId(id)) continue;
      const e = queue.get(id);
      if (e && queues.includes(e.queue)) targets.push(id);
    }
  }
  const log = queue.logger('postsuper');
  for (const id of targets) {
    const e = queue.get(id);
    if (!e) continue; // lost a race with delivery
    try {
      if (op === 'delete') await queue.remove(id, 'postsuper');
      else if (op === 'hold') {
        if (e.queue === 'hold') continue;
        await queue.hold(id);
      } else if (op === 'release') {
        if (e.queue !== 'hold') continue;
        await queue.release(id);
      } else await queue.requeue(id);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') continue;
      throw err;
    }
    if (op !== 'delete') log.info(`${id}: ${ADMIN_DONE_TEXT[op]}`);
    result.ids.push(id);
    result.count++;
  }
  // corrupt/ is not indexed: "postsuper -d ALL corrupt" empties the folder.
  if (op === 'delete' && sel.ids === 'ALL' && queues.includes('corrupt')) {
    const dir = join(queue.dir, 'corrupt');
    for (const name of readdirSync(dir)) {
      try {
        unlinkSync(join(dir, name));
        result.count++;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  return result;
}
