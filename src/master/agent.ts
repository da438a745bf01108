// One delivery agent thread (agents.ts): smtp(8)'s job for the deliveries the queue manager hands
// it. It builds its own delivery client from the configuration (resolver, connection cache, TLS
// policy), reads each message from its queue file, delivers it and sends the per-recipient
// results back. Its log lines and metrics go to the main thread, which owns the log file (and its
// rotation) and the process's metrics. Trusts the queue manager for what to deliver and when.

import { existsSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { loadConfig } from '../config/index.js';
import { maillog } from '../log/index.js';
import { forwardObservations } from '../observe/index.js';
import { readContent } from '../queue/index.js';
import { deliver } from '../smtp/index.js';
import type { AgentData, AgentOut, FromAgent, ToAgent } from './agents.js';
import { connectionCache, deliveryOptions, resolverFromConfig } from './wiring.js';

const port = parentPort!;
let outbox: AgentOut[] = [];

/** Everything for the main thread leaves in one message per turn of the event loop. */
function send(item: AgentOut): void {
  if (outbox.length === 0) setImmediate(flush);
  outbox.push(item);
}

function flush(): void {
  if (!outbox.length) return;
  const items = outbox;
  outbox = [];
  port.postMessage({ t: 'out', items } satisfies FromAgent);
}

maillog.open(undefined, { quiet: true });
maillog.addSink((r) => send({ k: 'log', service: r.service, severity: r.severity, text: r.text.replace(/^(warning|error|fatal): /, '') }));
forwardObservations((o) => send({ k: 'obs', o }));

const data = workerData as AgentData;
const { config } = loadConfig(data.configDir, data.texts);
const dns = resolverFromConfig(config);
const cache = connectionCache(config);
const opts = { ...deliveryOptions(config, { dns, cache }), logger: maillog.logger('smtp') };

// Test-only fault hook (docs/battery.md), like queueside.ts's: while the file named by
// BACKSTOP_FAULT_AGENT_CRASH_FILE exists, a thread dies (an uncaught exception) as deliveries reach
// it. Unset (always, in production) it changes nothing.
const crashFlag = process.env.BACKSTOP_FAULT_AGENT_CRASH_FILE;

port.on('message', (m: ToAgent) => {
  if (crashFlag && existsSync(crashFlag)) {
    setImmediate(() => {
      throw new Error('fault injected (BACKSTOP_FAULT_AGENT_CRASH_FILE)');
    });
  }
  if (m.t === 'stop') {
    void cache.closeAll().finally(() => {
      dns.close();
      flush();
      // Ends this thread only (process.exit in a worker thread), whatever timers a cache left.
      setImmediate(() => process.exit(0));
    });
    return;
  }
  for (const { n, job } of m.jobs) {
    const { path, ...msg } = job;
    deliver({ ...msg, body: () => readContent(path) }, opts).then(
      (results) => send({ k: 'done', n, results }),
      (err: Error) => send({ k: 'failed', n, error: err.message }),
    );
  }
});
