// The smtpd side of the mail system, in dependency order: DNS → the verify cache and service
// (probes through the same routing as mail) → the restriction engine → the smtpd listeners, with
// the queue as their MessageSink. The master runs it itself (one process) or each smtpd worker
// runs its own (several processes); what it needs of the queue side comes in as interfaces
// (`SmtpdSideDeps`), so it works the same either way. A reload gives new sessions the new
// configuration; running sessions finish on the old one. Stops in the reverse order.

import type { Config, LoadedConfig } from '../config/index.js';
import { maillog } from '../log/index.js';
import type { Envelope } from '../mail/index.js';
import { makeQueueId, type BeginOptions, type QueueTransaction } from '../queue/index.js';
import { probe } from '../smtp/index.js';
import { createVerifier, openVerifyStore, verifyParamsFrom, startVerifySync, type DestinationUpSource, type VerifyService, type VerifyStore } from '../verify/index.js';
import { createRestrictionEngine } from '../smtpd/check/index.js';
import { startSmtpd, type ConnectionCounter, type Flusher, type MessageSink, type Smtpd } from '../smtpd/index.js';
import { connectionCache, deliveryOptions, myAddresses, resolverFromConfig } from './wiring.js';

export interface SmtpdSideDeps {
  /** Where accepted mail goes: the Queue itself, or a worker's QueueWriter. */
  queue: { begin(envelope: Envelope, opts?: BeginOptions): QueueTransaction };
  /** ETRN's fast flush (the queue manager, directly or through the master). */
  flusher: Flusher;
  /** Ask the queue manager's watch to report when the next hop of `address` answers again. */
  watchAddress(address: string): void;
  /** The queue manager's "destination is back" announcements (verify re-probes then). */
  destinationEvents: DestinationUpSource;
  /** Run backstop_verify_sync_map's periodic probes here (one process of several does). */
  verifySync: boolean;
  /** The master's anvil when several workers share the clients; default: smtpd's own. */
  anvil?: ConnectionCounter;
  /** The verify cache, when the caller opened it first (it closes with this side). */
  store?: VerifyStore;
}

export interface SmtpdSide {
  smtpd: Smtpd;
  verifier: VerifyService;
  /** The verify cache (its size for the status). */
  store: VerifyStore;
  reload(config: Config): void;
  /** Stop now (sessions get smtpd's close grace), or, with `retire`, once the last session ends. */
  stop(opts?: { retire?: boolean }): Promise<void>;
}

export async function startSmtpdSide(loaded: LoadedConfig, deps: SmtpdSideDeps): Promise<SmtpdSide> {
  const { config } = loaded;
  const log = (service: string) => maillog.logger(service);
  const dns = resolverFromConfig(config);
  const cache = connectionCache(config);
  const store = deps.store ?? (await openVerifyStore(config.str('address_verify_map'), { baseDir: config.dir }));
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
      if (r.status === 'deferred' && reprobe) deps.watchAddress(address);
      return r;
    },
    params: verifyParamsFrom(config),
    destinationEvents: deps.destinationEvents,
    log: log('verify'),
  });

  const engineFor = (cfg: Config) =>
    createRestrictionEngine(cfg, { dns, verifier, myAddresses: () => myAddresses(cfg), log: log('smtpd') });
  // One queue transaction per message, committed by smtpd after end of data (HOLD → hold/,
  // DISCARD → abort). smtpd logs client= itself. Mail to the probe sender (bounces of our
  // probes) is discarded, recipient by recipient, as Postfix's cleanup does.
  const sink: MessageSink = {
    begin: (envelope) => {
      const keep = envelope.recipients.filter((r) => !verifier.isProbeSender(r.address));
      if (keep.length === envelope.recipients.length) return deps.queue.begin(envelope, { logClient: false });
      const tx = deps.queue.begin(keep.length ? { ...envelope, recipients: keep } : envelope, { logClient: false });
      for (const r of envelope.recipients) if (!keep.includes(r)) log('cleanup').info(`${tx.id}: discard: mail to the address verification probe sender <${r.address}>`);
      if (keep.length) return tx;
      // Nobody left to deliver to: the content is still read (and checked), then nothing is kept.
      return { id: tx.id, write: (c) => tx.write(c), commit: async () => (await tx.abort(), tx.id), abort: () => tx.abort() };
    },
  };
  let smtpd: Smtpd;
  try {
    smtpd = await startSmtpd({ config, services: loaded.services, engine: engineFor, queue: sink, flusher: deps.flusher, dns, log: log('smtpd'), ...(deps.anvil ? { anvil: deps.anvil } : {}) });
  } catch (err) {
    await verifier.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    await cache.closeAll().catch(() => undefined);
    dns.close();
    throw err;
  }
  const syncMap = config.str('backstop_verify_sync_map');
  const sync = syncMap && deps.verifySync
    ? startVerifySync(verifier, { ref: syncMap, baseDir: config.dir, intervalSec: config.time('backstop_verify_sync_interval'), log: log('verify') })
    : undefined;
  const running = smtpd;
  return {
    smtpd,
    verifier,
    store,
    reload: (next) => running.reload(next),
    async stop(opts = {}) {
      await (opts.retire ? running.retire() : running.close());
      await sync?.stop();
      await verifier.close();
      await store.close();
      await cache.closeAll();
      dns.close();
    },
  };
}
