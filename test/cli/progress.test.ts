// Progress bars of long commands: postsuper ALL through the running server's control socket shows
// a cli-progress bar on a terminal (in steps, with the same result as one ALL: messages counted
// once, corrupt/ emptied by -d ALL) and writes nothing but its summary when standard error is not
// a terminal. (verify warm's bar: test/verify/cli.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { enqueue, Queue, applyAdmin } from '../../src/queue/index.js';
import { postsuperCommand } from '../../src/cli/postsuper.js';
import type { QueueCommandIo } from '../../src/cli/postqueue.js';
import { startControlServer, controlSocketPath, type ControlHandlers } from '../../src/control/index.js';
import { tempDir, envelope, message, chunks, quietLog } from '../queue/helpers.js';

function io(queueDirectory: string, tty: boolean): QueueCommandIo & { err: () => string } {
  let err = '';
  return { stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) }, configDir: queueDirectory, queueDirectory, tty, err: () => err };
}

test('postsuper -r ALL and -d ALL on a terminal: a progress bar, the same totals; quiet otherwise', { timeout: 120_000 }, async () => {
  const { dir, cleanup } = tempDir();
  const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
  const handlers: ControlHandlers = {
    flush: async () => undefined,
    flushSite: async () => 'ok',
    delete: (sel) => applyAdmin(q, 'delete', sel),
    hold: (sel) => applyAdmin(q, 'hold', sel),
    release: (sel) => applyAdmin(q, 'release', sel),
    requeue: (sel) => applyAdmin(q, 'requeue', sel),
  };
  const server = await startControlServer(controlSocketPath(dir), handlers);
  try {
    const N = 230;
    for (let i = 0; i < N; i++) await enqueue(q, envelope(), chunks(message()), { queue: i % 2 ? 'deferred' : 'hold' });
    writeFileSync(join(dir, 'corrupt', 'BAD1'), 'junk');

    const tty = io(dir, true);
    assert.equal(await postsuperCommand(['-r', 'ALL'], tty), 0);
    const bar = tty.err();
    assert.match(bar, /postsuper: requeued \[[=-]+\] 0\/230 \(0%/);
    // Frames in between depend on the clock (the bar redraws at most 10 times a second): a fast
    // machine may finish the 200-message step before the next redraw.
    assert.match(bar, /postsuper: requeued \[=+\] 230\/230 \(100%/);
    assert.ok(bar.endsWith('\x1b[2Kpostsuper: Requeued: 230 messages\n'), JSON.stringify(bar.slice(-80)));

    const quiet = io(dir, false);
    assert.equal(await postsuperCommand(['-d', 'ALL'], quiet), 0);
    assert.equal(quiet.err(), 'postsuper: Deleted: 230 messages\n');
    assert.equal(q.size, 0);

    // -d ALL corrupt on a terminal: nothing indexed, the folder is still emptied by the final ALL.
    const c = io(dir, true);
    assert.equal(await postsuperCommand(['-d', 'ALL', 'corrupt'], c), 0);
    assert.match(c.err(), /postsuper: Deleted: 1 message\n$/);
    assert.deepEqual(readdirSync(join(dir, 'corrupt')), []);
  } finally {
    await server.close();
    await q.close();
    cleanup();
  }
});
