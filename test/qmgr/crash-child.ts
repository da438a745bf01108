// Child process for the crash-recovery test: runs a real Queue and queue manager delivering to the
// parent's sink. Mode "load": accepts messages 0..N-1 (20 at a time) and prints "A i" after each
// accept resolved (the moment smtpd would answer 250). Mode "drain": only delivers, prints "empty"
// when the queue is empty. The parent kills it with SIGKILL in the middle of "load".
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Maillog } from '../../src/log/index.js';
import { enqueue, Queue } from '../../src/queue/index.js';
import { Resolver } from '../../src/dns/index.js';
import { ConnectionCache } from '../../src/smtp/index.js';
import { createQmgr } from '../../src/qmgr/index.js';
import { envelope } from './harness.js';
import { sleep } from '../helpers/net.js';

const [mode, dir, dnsServers, port, count] = process.argv.slice(2);
const maillog = new Maillog();
maillog.open(undefined, { quiet: true });
const queue = await Queue.open({ queueDirectory: join(dir, 'spool'), maillog });
const qmgr = createQmgr({
  queue,
  delivery: { dns: new Resolver({ servers: [dnsServers] }), isSelf: () => false, defaultPort: Number(port), session: { heloName: 'backup.test' }, cache: new ConnectionCache(), logger: maillog.logger('smtp') },
  params: { minimal_backoff_time: 1, maximal_backoff_time: 1, queue_run_delay: 1, backstop_destination_probe_interval: 0.2 },
  log: maillog.logger('qmgr'),
});
await qmgr.start();
process.stdout.write(`recovered ${queue.recovery.active.length}\n`);
if (mode === 'load') {
  const n = Number(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next < n) {
        const i = next++;
        const body = `Message-ID: <${i}@crash.test>\r\nSubject: ${i}\r\n\r\nmessage ${i}\r\n`;
        await enqueue(queue, envelope('s@sender.test', [`u${i}@example.test`]), Readable.from([Buffer.from(body)]));
        process.stdout.write(`A ${i}\n`);
      }
    }),
  );
}
for (;;) {
  if (queue.size === 0) break;
  await sleep(50);
}
process.stdout.write('empty\n');
await qmgr.stop();
await queue.close();
process.exit(0);
