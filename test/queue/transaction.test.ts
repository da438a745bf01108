// The queue's transactional interface: begin → write → commit | abort, on real files on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { enqueue, Queue, type QueueTransaction } from '../../src/queue/index.js';
import { SmtpError } from '../../src/mail/index.js';
import { tempDir, envelope, message, chunks, collect, quietLog } from './helpers.js';

const QUEUES = ['incoming', 'active', 'deferred', 'hold', 'corrupt'];

/** Every queue folder's files, for "what is on disk" assertions. */
function onDisk(dir: string): Record<string, string[]> {
  return Object.fromEntries(QUEUES.map((q) => [q, readdirSync(join(dir, q)).sort()]));
}

function only(queue: string, ...ids: string[]): Record<string, string[]> {
  return Object.fromEntries(QUEUES.map((q) => [q, q === queue ? ids.sort() : []]));
}

async function withQueue(fn: (q: Queue, dir: string, lines: string[]) => Promise<void>, opts: { messageSizeLimit?: number } = {}): Promise<void> {
  const { dir, cleanup } = tempDir();
  const { log, lines } = quietLog();
  const q = await Queue.open({ queueDirectory: dir, maillog: log, ...opts });
  try {
    await fn(q, dir, lines);
  } finally {
    await q.close();
    cleanup();
  }
}

const commitCases: {
  desc: string;
  commit?: { queue?: 'hold' };
  logClient?: boolean;
  writes: Buffer[][];
  queue: 'active' | 'hold';
  lines: (id: string, size: number) => string[];
}[] = [
  {
    desc: 'commit to active (default): logged as accept() logs a message without a reserved id',
    writes: [[message()]],
    queue: 'active',
    lines: (id, size) => [
      `smtpd: ${id}: client=localhost[127.0.0.1]`,
      `cleanup: ${id}: message-id=<m1@client.test>`,
      `qmgr: ${id}: from=<sender@client.test>, size=${size}, nrcpt=1 (queue active)`,
    ],
  },
  {
    desc: 'commit to hold: no (queue active) line',
    commit: { queue: 'hold' },
    writes: [[message()]],
    queue: 'hold',
    lines: (id) => [`smtpd: ${id}: client=localhost[127.0.0.1]`, `cleanup: ${id}: message-id=<m1@client.test>`],
  },
  {
    desc: 'logClient: false leaves the client= line to the caller (smtpd); several writes append',
    logClient: false,
    writes: [[Buffer.from('Subject: a\r\n')], [Buffer.from('Message-ID: <m2@client.test>\r\n\r\n'), Buffer.from('Body.\r\n')]],
    queue: 'active',
    lines: (id, size) => [`cleanup: ${id}: message-id=<m2@client.test>`, `qmgr: ${id}: from=<sender@client.test>, size=${size}, nrcpt=1 (queue active)`],
  },
];

for (const c of commitCases) {
  test(`transaction: ${c.desc}`, () =>
    withQueue(async (q, dir, lines) => {
      const accepted: string[] = [];
      q.on('accepted', (id) => accepted.push(id));
      const tx = q.begin(envelope(), c.logClient === undefined ? undefined : { logClient: c.logClient });
      assert.match(tx.id, /^[0-9A-F]{6,}$/);
      for (const w of c.writes) await tx.write(chunks(...w));
      assert.equal(q.has(tx.id), false, 'not indexed before commit');
      assert.equal(readdirSync(join(dir, 'incoming')).length, 1, 'content is in a temporary file');
      const id = await tx.commit(c.commit);
      assert.equal(id, tx.id);
      const content = Buffer.concat(c.writes.flat());
      assert.deepEqual(onDisk(dir), only(c.queue, id));
      assert.equal(q.get(id)!.queue, c.queue);
      assert.deepEqual(await collect(q.content(id)), content);
      assert.deepEqual(accepted, [id]);
      assert.deepEqual(lines, c.lines(id, content.length));
      await tx.abort(); // a no-op after commit: the message stays
      assert.deepEqual(onDisk(dir), only(c.queue, id));
    }));
}

test('transaction: abort leaves no file in incoming/ and releases the id', () =>
  withQueue(async (q, dir, lines) => {
    const tx = q.begin(envelope());
    await tx.write(chunks(message()));
    assert.equal(readdirSync(join(dir, 'incoming')).length, 1);
    await tx.abort();
    await tx.abort(); // idempotent
    assert.deepEqual(onDisk(dir), only('active'));
    assert.equal(q.size, 0);
    assert.deepEqual(lines, []);
    // A released id is no longer reserved, and a new transaction gets a fresh one.
    const other = await enqueue(q, envelope(), chunks(message()));
    assert.notEqual(other, tx.id);
  }));

test('transaction: two transactions committing concurrently: distinct ids, both durable', () =>
  withQueue(async (q, dir) => {
    const txs = Array.from({ length: 2 }, (_, i) => q.begin(envelope({ sender: `s${i}@client.test` })));
    assert.notEqual(txs[0].id, txs[1].id);
    await Promise.all(txs.map((tx, i) => tx.write(chunks(message(`Body ${i}.\r\n`)))));
    const ids = await Promise.all(txs.map((tx) => tx.commit()));
    assert.deepEqual(ids, txs.map((tx) => tx.id));
    assert.deepEqual(onDisk(dir), only('active', ...ids));
    for (const [i, id] of ids.entries()) {
      assert.equal(q.get(id)!.sender, `s${i}@client.test`);
      assert.deepEqual(await collect(q.content(id)), message(`Body ${i}.\r\n`));
    }
  }));

const failureCases: {
  desc: string;
  sizeLimit?: number;
  act: (q: Queue) => Promise<QueueTransaction>;
  expected: { message: string; responseCode: number };
}[] = [
  {
    desc: 'write over message_size_limit → 552 5.3.4; commit then fails the same way',
    sizeLimit: 100,
    act: async (q) => {
      const tx = q.begin(envelope());
      await assert.rejects(tx.write(chunks(Buffer.alloc(60, 'a'), Buffer.alloc(60, 'b'))), { message: '552 5.3.4 Message file too big' });
      return tx;
    },
    expected: { message: '552 5.3.4 Message file too big', responseCode: 552 },
  },
  {
    desc: 'a content stream that errors → 451 4.3.0 and no file',
    act: async (q) => {
      const tx = q.begin(envelope());
      async function* broken() {
        yield Buffer.from('Subject: x\r\n');
        throw new Error('client went away');
      }
      await assert.rejects(tx.write(broken()), { message: '451 4.3.0 Error: queue file write error', causeText: 'client went away' });
      return tx;
    },
    expected: { message: '451 4.3.0 Error: queue file write error', responseCode: 451 },
  },
  {
    desc: 'commit after abort → 451 4.3.0',
    act: async (q) => {
      const tx = q.begin(envelope());
      await tx.write(chunks(message()));
      await tx.abort();
      return tx;
    },
    expected: { message: '451 4.3.0 Error: queue file write error', responseCode: 451 },
  },
];

for (const c of failureCases) {
  test(`transaction: ${c.desc}`, () =>
    withQueue(
      async (q, dir) => {
        const tx = await c.act(q);
        assert.deepEqual(onDisk(dir), only('active'), 'no file after the failure');
        await assert.rejects(tx.commit(), (err: unknown) => {
          assert.ok(err instanceof SmtpError);
          assert.equal(err.message, c.expected.message);
          assert.equal(err.responseCode, c.expected.responseCode);
          return true;
        });
        await assert.rejects(tx.write(chunks(message())), { responseCode: c.expected.responseCode });
        await tx.abort();
        assert.deepEqual(onDisk(dir), only('active'));
        assert.equal(q.size, 0);
      },
      { messageSizeLimit: c.sizeLimit },
    ));
}

test('begin: closed queue → 451 4.3.0, no recipients → 554 5.5.1 (synchronous throws)', async () => {
  const cases = [
    { desc: 'no recipients', closed: false, env: envelope({ recipients: [] }), message: '554 5.5.1 Error: no valid recipients' },
    { desc: 'closed queue', closed: true, env: envelope(), message: '451 4.3.0 Error: queue file write error' },
  ];
  for (const c of cases) {
    const { dir, cleanup } = tempDir();
    try {
      const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
      if (c.closed) await q.close();
      assert.throws(() => q.begin(c.env), (err: unknown) => err instanceof SmtpError && err.message === c.message, c.desc);
      await q.close();
      assert.deepEqual(onDisk(dir), only('active'), c.desc);
    } finally {
      cleanup();
    }
  }
});
