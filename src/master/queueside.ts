// The queue side of the mail system, in dependency order: DNS → the queue (lock, recovery, the
// index) → the delivery client → the bounce service → the queue manager → the control socket
// for postqueue/postsuper. Exactly one process runs it: the master itself (one process) or the
// queue manager worker (several processes), so scheduling, the destination watch and the
// per-destination connection limits exist once. Stops in the reverse order.

import { existsSync } from 'node:fs';
import type { Config, ConfigTexts } from '../config/index.js';
import { maillog } from '../log/index.js';
import { Queue, type WriteFn } from '../queue/index.js';
import { createQmgr, createNoticeBuilder, controlHandlers, qmgrParamsFrom, type Qmgr } from '../qmgr/index.js';
import { startControlServer, controlSocketPath } from '../control/index.js';
import { configPath } from './paths.js';
import { connectionCache, deliveryOptions, resolverFromConfig } from './wiring.js';
import { DeliveryAgents } from './agents.js';

export interface QueueSide {
  queue: Queue;
  qmgr: Qmgr;
  /** The delivery agent threads; none when the queue manager delivers itself (one core). */
  agents?: DeliveryAgents;
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


/** `texts`: the configuration the master validated, for the delivery agent threads. */
export async function startQueueSide(config: Config, texts?: ConfigTexts): Promise<QueueSide> {
  const log = (service: string) => maillog.logger(service);
  const dns = resolverFromConfig(config);
  const queue = await Queue.open({
    queueDirectory: configPath(config, 'queue_directory'),
    maillog,
    messageSizeLimit: config.size('message_size_limit'),
    lock: true,
    wrapWrite: faultHook(),
  });
  const cache = connectionCache(config);
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
  const count = config.int('backstop_delivery_agents');
  const agents = count ? new DeliveryAgents({ count, data: { configDir: config.dir, texts }, maxIdleMs: config.time('max_idle') * 1000, throttleMs: config.time('service_throttle_time') * 1000 }) : undefined;
  const qmgr = createQmgr({ queue, delivery: deliveryOptions(config, { dns, cache }), deliver: agents?.deliver, notices, params: qmgrParamsFrom(config), log: log('qmgr') });
  let control;
  try {
    await qmgr.start();
    control = await startControlServer(controlSocketPath(queue.dir), controlHandlers(qmgr, queue));
  } catch (err) {
    await qmgr.stop().catch(() => undefined);
    await agents?.close();
    await queue.close().catch(() => undefined);
    dns.close();
    throw err;
  }
  const running = control;
  return {
    queue,
    qmgr,
    agents,
    async stop() {
      await running.close();
      await qmgr.stop();
      await agents?.close();
      await queue.close();
      await cache.closeAll();
      dns.close();
    },
  };
}
