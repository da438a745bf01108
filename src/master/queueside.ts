// The queue side of the mail system, in dependency order: DNS → the queue (lock, recovery, the
// index) → the delivery client → the bounce service → the queue manager → the control socket
// for postqueue/postsuper. With backstop_queue_store = postgres:FILE the queue is the shared
// PostgreSQL queue's PgQueue (docs/cluster.md): the database need not answer at start (deliveries
// wait for it), and the destination watch's "destination is back" makes that destination's mail
// due on every node. Exactly one process runs it: the master itself (one process) or the
// queue manager worker (several processes), so scheduling, the destination watch and the
// per-destination connection limits exist once. Stops in the reverse order.

import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Config, ConfigTexts } from '../config/index.js';
import { maillog } from '../log/index.js';
import { Queue, type AdminResult, type QueueEntry, type SchedulingQueue, type WriteFn } from '../queue/index.js';
import { connectPrimary, loadPgConfig, parseQueueStore, PgQueue, PgSlots, type PgConfig } from '../queue/pg/index.js';
import { createQmgr, createNoticeBuilder, controlHandlers, qmgrParamsFrom, type Qmgr } from '../qmgr/index.js';
import { startControlServer, controlSocketPath } from '../control/index.js';
import { configPath } from './paths.js';
import { connectionCache, deliveryOptions, resolverFromConfig } from './wiring.js';
import { DeliveryAgents } from './agents.js';

export interface QueueSide {
  /** The file Queue, or the shared queue's PgQueue. */
  queue: SchedulingQueue & { adopt(entry: QueueEntry): void };
  qmgr: Qmgr;
  /** The delivery agent threads (backstop_delivery_agents; the file store only). */
  agents?: DeliveryAgents;
  /**
   * ETRN's fast flush: this queue manager's, and on the shared queue every node's (the domain's
   * deferred rows made due, then NOTIFY). False when the domain may not be flushed.
   */
  flushDomain(domain: string): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * Test-only fault hook (docs/battery.md), for machines where a small tmpfs cannot be mounted:
 * while the file named by BACKSTOP_FAULT_ENOSPC_FILE exists, every queue file write fails with
 * ENOSPC, exactly as on a full disk. Unset (always, in production) it changes nothing.
 */
export function faultHook(): ((write: WriteFn) => WriteFn) | undefined {
  const flag = process.env.BACKSTOP_FAULT_ENOSPC_FILE;
  if (!flag) return undefined;
  return (write) => (fd, buffers, position) => {
    if (existsSync(flag)) throw Object.assign(new Error('ENOSPC: no space left on device, write (BACKSTOP_FAULT_ENOSPC_FILE)'), { code: 'ENOSPC' });
    write(fd, buffers, position);
  };
}

/** The PostgreSQL queue's configuration when backstop_queue_store selects it (backstop check validated it). */
export function pgQueueConfig(config: Config): PgConfig | null {
  const spec = parseQueueStore(config.str('backstop_queue_store'));
  if (spec.kind === 'file') return null;
  return loadPgConfig(isAbsolute(spec.file) ? spec.file : resolve(config.dir, spec.file));
}

async function openQueue(config: Config, pgConfig: PgConfig | null): Promise<Queue | PgQueue> {
  if (pgConfig) {
    const q = PgQueue.open({
      config: pgConfig,
      nodeName: config.str('myhostname'),
      dir: configPath(config, 'queue_directory'),
      leaseMs: config.time('backstop_queue_lease_time') * 1000,
      messageSizeLimit: config.size('message_size_limit'),
      maillog,
    });
    // A reachable database is ready before anything is served (single process: smtpd's first
    // senders); one that is away is not waited for longer than a connection attempt.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([q.store.whenReady(), new Promise<void>((r) => (timer = setTimeout(r, pgConfig.connectTimeoutMs)))]);
    clearTimeout(timer);
    return q;
  }
  return Queue.open({
    queueDirectory: configPath(config, 'queue_directory'),
    maillog,
    messageSizeLimit: config.size('message_size_limit'),
    recycleLimit: config.int('backstop_queue_file_recycle_limit'),
    lock: true,
    wrapWrite: faultHook(),
  });
}

/** postsuper on the shared queue is the administration commands' work, not this socket's (docs/cluster.md). */
async function notOnSharedQueue(): Promise<AdminResult> {
  throw new Error('postsuper through the queue manager is not available with the PostgreSQL queue store (docs/cluster.md)');
}

/** `texts`: the configuration the master validated, for the delivery agent threads. */
export async function startQueueSide(config: Config, texts?: ConfigTexts): Promise<QueueSide> {
  const log = (service: string) => maillog.logger(service);
  const dns = resolverFromConfig(config);
  const pgConfig = pgQueueConfig(config);
  const queue = await openQueue(config, pgConfig);
  const cache = connectionCache(config);
  // Several nodes on one queue: each connection to a next hop holds a slot shared by every node
  // (advisory locks), so a returning primary sees the limit across the cluster, not per node.
  const slots = pgConfig ? new PgSlots({ connect: () => connectPrimary(pgConfig, { keepAlive: true, applicationName: 'backstop slots' }), log: log('qmgr') }) : undefined;
  // Delivery agent threads read the queue files themselves: the file store only.
  const count = queue instanceof Queue ? config.int('backstop_delivery_agents') : 0;
  const agents = count ? new DeliveryAgents({ count, data: { configDir: config.dir, texts }, maxIdleMs: config.time('max_idle') * 1000, throttleMs: config.time('service_throttle_time') * 1000 }) : undefined;
  const delivery = { ...deliveryOptions(config, { dns, cache }), slots, slotLimit: config.int('smtp_destination_concurrency_limit'), slotWaitSec: config.time('smtp_connection_reuse_time_limit') };
  const notices = createNoticeBuilder({
    myhostname: config.str('myhostname'),
    myorigin: config.str('myorigin'),
    doubleBounceRecipient: config.str('2bounce_notice_recipient'),
    mailName: config.str('mail_name'),
    bounceSizeLimit: config.size('bounce_size_limit'),
    delayWarningTime: config.time('delay_warning_time'),
    maximalQueueLifetime: config.time('maximal_queue_lifetime'),
    log: log('bounce'),
  });
  const qmgr = createQmgr({ queue, delivery, deliver: agents?.deliver, notices, params: qmgrParamsFrom(config), log: log('qmgr') });
  let control;
  try {
    await qmgr.start();
    if (queue instanceof PgQueue) {
      // Flush on return across the cluster; a flush from any node (NOTIFY) ignores the dead list here.
      const pgq = queue;
      qmgr.on('destinationUp', (domain) => void pgq.flushDomainEverywhere(domain));
      pgq.onFlush((payload) => void (payload ? qmgr.flushDomain(payload) : qmgr.flushAll()));
    }
    const handlers = queue instanceof Queue
      ? controlHandlers(qmgr, queue)
      : { ...controlHandlers(qmgr, null as never), delete: notOnSharedQueue, hold: notOnSharedQueue, release: notOnSharedQueue, requeue: notOnSharedQueue };
    control = await startControlServer(controlSocketPath(queue.dir), handlers);
  } catch (err) {
    await qmgr.stop().catch(() => undefined);
    await agents?.close();
    await queue.close().catch(() => undefined);
    await cache.closeAll();
    await slots?.close();
    dns.close();
    throw err;
  }
  const running = control;
  return {
    queue,
    qmgr,
    agents,
    async flushDomain(domain) {
      const ok = await qmgr.flushDomain(domain);
      if (ok && queue instanceof PgQueue) await queue.flushDomainEverywhere(domain.toLowerCase());
      return ok;
    },
    async stop() {
      await running.close();
      await qmgr.stop();
      await agents?.close();
      await queue.close();
      await cache.closeAll();
      await slots?.close();
      dns.close();
    },
  };
}
