// Builds the running mail system from a validated configuration, in dependency order:
// DNS → queue (recovery) → delivery client → queue manager → verify (probes through the same
// routing, re-probes when the queue manager sees a destination return) → restriction engine →
// smtpd listeners → control socket for postqueue/postsuper. Stops in the reverse order so no
// accepted message is left half-written. A reload gives smtpd (new sessions) the new
// configuration; running sessions finish on the old one.

import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { Config, LoadedConfig } from '../config/index.js';
import { maillog } from '../log/index.js';
import { Queue, makeQueueId, type WriteFn } from '../queue/index.js';
import { probe } from '../smtp/index.js';
import { createQmgr, createNoticeBuilder, controlHandlers, qmgrParamsFrom } from '../qmgr/index.js';
import { createVerifier, openVerifyStore, verifyParamsFrom, startVerifySync } from '../verify/index.js';
import { createRestrictionEngine } from '../smtpd/check/index.js';
import { startSmtpd, type MessageSink } from '../smtpd/index.js';
import { startControlServer, controlSocketPath } from '../control/index.js';
import { connectionCache, deliveryOptions, myAddresses, resolverFromConfig } from './wiring.js';
import type { App } from './master.js';

function dirParam(config: Config, name: string): string {
  const v = config.str(name);
  return isAbsolute(v) ? v : resolve(config.dir, v);
}

/**
 * Test-only fault hook (docs/battery.md), for machines where a small tmpfs cannot be mounted:
 * while the file named by BACKSTOP_FAULT_ENOSPC_FILE exists, every queue file write fails with
 * ENOSPC, exactly as on a full disk. Unset (always, in production) it changes nothing.
 */
function faultHook(): ((write: WriteFn) => WriteFn) | undefined {
  const flag = process.env.BACKSTOP_FAULT_ENOSPC_FILE;
  if (!flag) return undefined;
  return (write) => async (fh, buffers, position) => {
    if (existsSync(flag)) throw Object.assign(new Error('ENOSPC: no space left on device, write (BACKSTOP_FAULT_ENOSPC_FILE)'), { code: 'ENOSPC' });
    return write(fh, buffers, position);
  };
}

export async function createApp(loaded: LoadedConfig): Promise<App> {
  const { config } = loaded;
  const log = (service: string) => maillog.logger(service);
  const dns = resolverFromConfig(config);
  const queue = await Queue.open({
    queueDirectory: dirParam(config, 'queue_directory'),
    maillog,
    messageSizeLimit: config.size('message_size_limit'),
    lock: true,
    wrapWrite: faultHook(),
  });
  const cache = connectionCache(config);
  const delivery = deliveryOptions(config, { dns, cache });
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
  const qmgr = createQmgr({ queue, delivery, notices, params: qmgrParamsFrom(config), log: log('qmgr') });

  const store = await openVerifyStore(config.str('address_verify_map'), { baseDir: config.dir });
  const probeRouting = deliveryOptions(config, { dns, cache }, true);
  let probeSeq = 0;
  const reprobe = config.bool('backstop_verify_reprobe_on_return');
  const verifier = createVerifier({
    store,
    // Probes log like Postfix's: a queue-ID-style id, then `status=deliverable (...)`.
    prober: async (address, sender) => {
      const r = await probe(address, sender, { ...probeRouting, queueId: makeQueueId(++probeSeq) });
      // A probe that could not reach the primary says nothing about the address: have the queue
      // manager's watch tell us (destinationUp) when the primary answers, and probe again then.
      if (r.status === 'deferred' && reprobe) void qmgr.watchAddress(address);
      return r;
    },
    params: verifyParamsFrom(config),
    destinationEvents: qmgr,
    log: log('verify'),
  });

  const engineFor = (cfg: Config) =>
    createRestrictionEngine(cfg, { dns, verifier, myAddresses: () => myAddresses(cfg), log: log('smtpd') });
  // The queue is smtpd's MessageSink: one transaction per message, committed by smtpd after end
  // of data (HOLD → hold/, DISCARD → abort). smtpd logs client= itself. Mail to the probe sender
  // (bounces of our probes) is discarded, recipient by recipient, as Postfix's cleanup does.
  const sink: MessageSink = {
    begin: (envelope) => {
      const keep = envelope.recipients.filter((r) => !verifier.isProbeSender(r.address));
      if (keep.length === envelope.recipients.length) return queue.begin(envelope, { logClient: false });
      const tx = queue.begin(keep.length ? { ...envelope, recipients: keep } : envelope, { logClient: false });
      for (const r of envelope.recipients) if (!keep.includes(r)) log('cleanup').info(`${tx.id}: discard: mail to the address verification probe sender <${r.address}>`);
      if (keep.length) return tx;
      // Nobody left to deliver to: the content is still read (and checked), then nothing is kept.
      return { id: tx.id, write: (c) => tx.write(c), commit: async () => (await tx.abort(), tx.id), abort: () => tx.abort() };
    },
  };
  let smtpd;
  try {
    await qmgr.start();
    smtpd = await startSmtpd({ config, services: loaded.services, engine: engineFor, queue: sink, flusher: qmgr, dns, log: log('smtpd') });
  } catch (err) {
    await qmgr.stop().catch(() => undefined);
    await verifier.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    await queue.close().catch(() => undefined);
    dns.close();
    throw err;
  }
  const control = await startControlServer(controlSocketPath(queue.dir), controlHandlers(qmgr, queue));
  const syncMap = config.str('backstop_verify_sync_map');
  const sync = syncMap
    ? startVerifySync(verifier, { ref: syncMap, baseDir: config.dir, intervalSec: config.time('backstop_verify_sync_interval'), log: log('verify') })
    : undefined;
  for (const a of smtpd.addresses()) log('master').info(`smtpd listening on ${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`);

  const running = smtpd;
  return {
    async reload(next) {
      running.reload(next.config);
    },
    async stop() {
      await running.close();
      await sync?.stop();
      await control.close();
      await qmgr.stop();
      await verifier.close();
      await store.close();
      await queue.close();
      await cache.closeAll();
      dns.close();
    },
  };
}
