// The mail system in one process (backstop_smtpd_workers = 0): the queue side (queue, delivery,
// queue manager, control socket) and the smtpd side (verify, restriction engine, listeners) in
// the master itself, wired directly: the queue is smtpd's sink, the queue manager its flusher
// and the verify service's source of "destination is back". Stops smtpd first, so no accepted
// message is left half-written, then the queue side. A reload gives smtpd (new sessions) the new
// configuration; running sessions finish on the old one.

import type { LoadedConfig } from '../config/index.js';
import { openVerifyStore } from '../verify/index.js';
import { logListening } from './paths.js';
import { startQueueSide } from './queueside.js';
import { startSmtpdSide } from './smtpdside.js';
import type { App } from './master.js';
import { observeQueueSide, observeSmtpdSide } from './observeside.js';

export async function createApp(loaded: LoadedConfig): Promise<App> {
  // The verify cache first: when it cannot be opened, nothing has started and queued mail is untouched.
  const store = await openVerifyStore(loaded.config.str('address_verify_map'), { baseDir: loaded.config.dir });
  let queueSide;
  try {
    queueSide = await startQueueSide(loaded.config, loaded.texts);
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  const { queue, qmgr } = queueSide;
  let smtpdSide;
  try {
    smtpdSide = await startSmtpdSide(loaded, {
      queue,
      flusher: queueSide,
      watchAddress: (address) => void qmgr.watchAddress(address),
      destinationEvents: qmgr,
      verifySync: true,
      store,
    });
  } catch (err) {
    await queueSide.stop().catch(() => undefined);
    throw err;
  }
  logListening(smtpdSide.smtpd.addresses());
  const running = smtpdSide;
  const queueReport = observeQueueSide(loaded.config, queue, qmgr);
  const smtpdReport = observeSmtpdSide(store);
  return {
    // One process: its own report is the whole system's.
    async observe() {
      const [q, s] = await Promise.all([queueReport(), smtpdReport()]);
      return { workers: [], reports: [{ ...q, role: 'all', verifyCacheSize: s.verifyCacheSize }], missing: 0 };
    },
    // The master reopens the maillog itself; there is no other process.
    reopenLogs: () => undefined,
    async reload(next) {
      running.reload(next.config);
    },
    async stop() {
      await running.stop();
      await queueSide.stop();
    },
  };
}
