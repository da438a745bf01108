// postqueue / mailq / postsuper output formats, direct mode and through the control socket.
process.env.TZ = 'UTC';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { enqueue, Queue, applyAdmin, formatMailq, formatJson, type ShowqMessage } from '../../src/queue/index.js';
import { asctime } from '../../src/mail/index.js';
import { postqueueCommand, mailqCommand, type QueueCommandIo as CommandIo } from '../../src/cli/postqueue.js';
import { postsuperCommand } from '../../src/cli/postsuper.js';
import { startControlServer, controlSocketPath, controlRequest, type ControlHandlers, type FlushStatus } from '../../src/control/index.js';
import { tempDir, envelope, message, chunks, quietLog } from './helpers.js';

function io(queueDirectory: string, stdin?: string): CommandIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    configDir: queueDirectory,
    queueDirectory,
    stdin: stdin === undefined ? undefined : (async function* () { yield Buffer.from(stdin); })(),
    out: () => out,
    err: () => err,
  };
}

const T = Date.UTC(2026, 10, 24, 19, 1, 42);

test('asctime matches C (day padded with a space)', () => {
  assert.equal(asctime(Date.UTC(2026, 10, 4, 9, 3, 7)), 'Wed Nov  4 09:03:07 2026\n');
});

test('formatMailq: Postfix showq_compat layout, markers, reasons, totals', () => {
  const msgs: ShowqMessage[] = [
    {
      queueName: 'deferred', queueId: '0B92E5104E3', arrivalTime: T, messageSize: 405, forcedExpire: false, sender: 'sender@client.test',
      recipients: [{ address: 'user@primary.test', delayReason: 'connect to mx1.primary.test[127.0.0.2]:25: Connection refused' }],
    },
    {
      queueName: 'active', queueId: '1DA96510558', arrivalTime: T + 1000, messageSize: 2000, forcedExpire: false, sender: '',
      recipients: [
        { address: 'a@p.test', delayReason: 'r1' },
        { address: 'b@p.test', delayReason: 'r1' },
        { address: 'c@p.test', delayReason: '' },
        { address: 'd@p.test', delayReason: 'x'.repeat(80) },
      ],
    },
    { queueName: 'hold', queueId: 'ABCDE1', arrivalTime: T, messageSize: 7, forcedExpire: true, sender: 's@x', recipients: [{ address: 'n@p.test', delayReason: '' }] },
  ];
  assert.equal(
    formatMailq(msgs),
    [
      '-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------',
      '0B92E5104E3     405 Tue Nov 24 19:01:42  sender@client.test',
      '               (connect to mx1.primary.test[127.0.0.2]:25: Connection refused)',
      '                                         user@primary.test',
      '',
      '1DA96510558*    2000 Tue Nov 24 19:01:43  MAILER-DAEMON',
      ' '.repeat(74) + '(r1)',
      '                                         a@p.test',
      '                                         b@p.test',
      ' '.repeat(58) + '(reason unavailable)',
      '                                         c@p.test',
      `(${'x'.repeat(80)})`,
      '                                         d@p.test',
      '',
      'ABCDE1!#          7 Tue Nov 24 19:01:42  s@x',
      '                                         n@p.test',
      '',
      '-- 2 Kbytes in 3 Requests.',
      '',
    ].join('\n'),
  );
  assert.equal(formatMailq([]), 'Mail queue is empty\n');
  assert.match(formatMailq(msgs.slice(0, 1)), /\n-- 0 Kbytes in 1 Request\.\n$/);
});

test('formatJson: Postfix showq_json field names, one object per line', () => {
  const line = formatJson([
    { queueName: 'deferred', queueId: '0B92E5104E3', arrivalTime: T, messageSize: 405, forcedExpire: false, sender: '', recipients: [
      { address: 'user@primary.test', delayReason: 'connect to x: "refused"' },
      { address: 'b@primary.test', delayReason: '' },
    ] },
  ]);
  assert.equal(
    line,
    '{"queue_name": "deferred", "queue_id": "0B92E5104E3", "arrival_time": ' + T / 1000 + ', "message_size": 405, "forced_expire": false, ' +
      '"sender": "MAILER-DAEMON", "recipients": [{"address": "user@primary.test", "delay_reason": "connect to x: \\"refused\\""}, {"address": "b@primary.test"}]}\n',
  );
  const parsed = JSON.parse(line);
  assert.equal(parsed.recipients[0].delay_reason, 'connect to x: "refused"');
});

async function seed(dir: string) {
  const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
  const a = await enqueue(q, envelope({ arrivalTime: T }), chunks(message()));
  const b = await enqueue(q, envelope({ arrivalTime: T + 1000, recipients: [{ address: 'x@p.test' }, { address: 'y@p.test' }] }), chunks(message()), { queue: 'deferred' });
  await q.markDeferred(b, [0, 1], 'connect to mx1.p.test[127.0.0.2]:25: Connection refused');
  const c = await enqueue(q, envelope({ arrivalTime: T + 2000, sender: '' }), chunks(message()), { queue: 'hold' });
  return { q, a, b, c, size: message().length };
}

test('postqueue -p, mailq and -j read the queue files', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const empty = io(dir);
    assert.equal(await postqueueCommand(['-p'], empty), 0);
    assert.equal(empty.out(), 'Mail queue is empty\n');
    const { q, a, b, c, size } = await seed(dir);
    await q.close();
    const p = io(dir);
    assert.equal(await postqueueCommand(['-c', dir, '-p'], p), 0);
    const pad = (s: string) => s.padEnd(11);
    const sz = String(size).padStart(7);
    assert.equal(
      p.out(),
      [
        '-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------',
        `${pad(c + '!')} ${sz} Tue Nov 24 19:01:44  MAILER-DAEMON`,
        '                                         user@primary.test',
        '',
        `${pad(a + '*')} ${sz} Tue Nov 24 19:01:42  sender@client.test`,
        '                                         user@primary.test',
        '',
        `${pad(b)} ${sz} Tue Nov 24 19:01:43  sender@client.test`,
        '               (connect to mx1.p.test[127.0.0.2]:25: Connection refused)'.padStart(78),
        '                                         x@p.test',
        '                                         y@p.test',
        '',
        '-- 0 Kbytes in 3 Requests.',
        '',
      ].join('\n'),
    );
    const m = io(dir);
    assert.equal(await mailqCommand([], m), 0);
    assert.equal(m.out(), p.out());
    const j = io(dir);
    assert.equal(await postqueueCommand(['-j'], j), 0);
    const objs = j.out().trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(objs.map((o) => [o.queue_name, o.queue_id]), [['hold', c], ['active', a], ['deferred', b]]);
    assert.deepEqual(objs[2].recipients, [
      { address: 'x@p.test', delay_reason: 'connect to mx1.p.test[127.0.0.2]:25: Connection refused' },
      { address: 'y@p.test', delay_reason: 'connect to mx1.p.test[127.0.0.2]:25: Connection refused' },
    ]);
  } finally {
    cleanup();
  }
});

test('postqueue: usage errors and flush with no server running', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const usage = 'usage: postqueue -f | postqueue -j | postqueue -p | postqueue -s site\n';
    const cases: Array<[string[], string]> = [
      [[], `postqueue: fatal: ${usage}`],
      [['-p', '-j'], `postqueue: fatal: ${usage}`],
      [['-x'], `postqueue: fatal: unknown option -x; ${usage}`],
      [['-s'], `postqueue: fatal: option -s needs a value; ${usage}`],
      [['-c'], `postqueue: fatal: option -c needs a value; ${usage}`],
    ];
    for (const [argv, want] of cases) {
      const t = io(dir);
      assert.equal(await postqueueCommand(argv, t), 64, argv.join(' '));
      assert.equal(t.err(), want);
    }
    const m = io(dir);
    assert.equal(await mailqCommand(['-q'], m), 64);
    assert.equal(m.err(), 'mailq: fatal: unknown option -q; usage: mailq\n');
    for (const argv of [['-f'], ['-s', 'primary.test']]) {
      const t = io(dir);
      assert.equal(await postqueueCommand(argv, t), 69);
      assert.equal(t.err(), 'postqueue: fatal: Cannot flush mail queue - mail system is down\n');
    }
  } finally {
    cleanup();
  }
});

test('postsuper in direct mode: -d, -h, -H, -r by ID and ALL, with Postfix messages', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const { q, a, b, c } = await seed(dir);
    await q.close();
    let t = io(dir);
    assert.equal(await postsuperCommand(['-h', a, '-h', 'bad-id', '-h', 'ABCDEF'], t), 0);
    assert.equal(t.err(), `postsuper: warning: invalid mail queue id: bad-id\npostsuper: ${a}: placed on hold\npostsuper: Placed on hold: 1 message\n`);
    assert.deepEqual(readdirSync(join(dir, 'hold')).sort(), [a, c].sort());
    t = io(dir);
    assert.equal(await postsuperCommand(['-H', 'ALL'], t), 0);
    assert.equal(t.err(), 'postsuper: Released from hold: 2 messages\n');
    assert.deepEqual(readdirSync(join(dir, 'deferred')).sort(), [a, b, c].sort());
    t = io(dir);
    assert.equal(await postsuperCommand(['-r', b], t), 0);
    assert.equal(t.err(), `postsuper: ${b}: requeued\npostsuper: Requeued: 1 message\n`);
    t = io(dir);
    assert.equal(await postsuperCommand(['-d', a, 'active'], t), 0, 'not in active: nothing');
    assert.equal(t.err(), '');
    t = io(dir, `${a}\n${b}\n`);
    assert.equal(await postsuperCommand(['-d', '-'], t), 0);
    assert.equal(t.err(), `postsuper: ${a}: removed\npostsuper: ${b}: removed\npostsuper: Deleted: 2 messages\n`);
    t = io(dir);
    assert.equal(await postsuperCommand(['-d', 'ALL', '-d', c], t), 0);
    assert.equal(t.err(), 'postsuper: warning: option "-d ALL" will ignore other command line queue IDs\npostsuper: Deleted: 1 message\n');
    for (const sub of ['active', 'deferred', 'hold']) assert.deepEqual(readdirSync(join(dir, sub)), []);
    t = io(dir);
    assert.equal(await postsuperCommand(['-d', 'ALL', 'nosuchqueue'], t), 1);
    assert.equal(t.err(), 'postsuper: fatal: invalid directory name: nosuchqueue\n');
    t = io(dir);
    assert.equal(await postsuperCommand(['-d'], t), 1);
    assert.match(t.err(), /^postsuper: fatal: (option -. needs a value; )?usage: postsuper /);
  } finally {
    cleanup();
  }
});

test('postsuper in direct mode waits for the lock and reports a live owner', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, lock: true });
    const t = io(dir);
    assert.equal(await postsuperCommand(['-d', 'ALL'], t), 75);
    assert.equal(t.err(), `postsuper: fatal: queue is locked by process ${process.pid} (${join(dir, 'pid', 'queue.lock')}); the server may be starting, try again\n`);
    await q.close();
  } finally {
    cleanup();
  }
});

test('commands go through the control socket while the server runs (no lost updates)', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const { q, a, b, c } = await seed(dir);
    const calls: string[] = [];
    const handlers: ControlHandlers = {
      flush: async () => void calls.push('flush'),
      flushSite: async (site): Promise<FlushStatus> => {
        calls.push(`flush-site ${site}`);
        return site === 'primary.test' ? 'ok' : site === '' ? 'bad' : 'deny';
      },
      delete: (sel) => applyAdmin(q, 'delete', sel),
      hold: (sel) => applyAdmin(q, 'hold', sel),
      release: (sel) => applyAdmin(q, 'release', sel),
      requeue: (sel) => applyAdmin(q, 'requeue', sel),
    };
    const server = await startControlServer(controlSocketPath(dir), handlers);
    try {
      let t = io(dir);
      assert.equal(await postqueueCommand(['-f'], t), 0);
      assert.equal(await postqueueCommand(['-s', 'primary.test'], t), 0);
      assert.equal(t.err(), '');
      t = io(dir);
      assert.equal(await postqueueCommand(['-s', 'other.test'], t), 69);
      assert.equal(t.err(), 'postqueue: fatal: Flush service is not configured for destination "other.test"\n');
      t = io(dir);
      assert.equal(await postqueueCommand(['-s', ''], t), 64);
      assert.equal(t.err(), 'postqueue: fatal: Invalid request: ""\n');
      assert.deepEqual(calls, ['flush', 'flush-site primary.test', 'flush-site other.test', 'flush-site ']);

      // The server's queue holds the lock-free in-memory state; the command changes it.
      t = io(dir);
      assert.equal(await postsuperCommand(['-h', a], t), 0);
      assert.equal(t.err(), `postsuper: ${a}: placed on hold\npostsuper: Placed on hold: 1 message\n`);
      assert.equal(q.get(a)!.queue, 'hold');
      t = io(dir);
      assert.equal(await postsuperCommand(['-H', 'ALL', '-r', b], t), 0);
      assert.equal(t.err(), `postsuper: ${b}: requeued\npostsuper: Requeued: 1 message\npostsuper: Released from hold: 2 messages\n`);
      assert.equal(q.get(c)!.queue, 'deferred');
      // Concurrent updates from the server and commands all land.
      await Promise.all([q.markDeferred(b, [0], 'again'), postsuperCommand(['-h', b], io(dir))]);
      assert.equal(q.get(b)!.queue, 'hold');
      assert.equal((await q.load(b)).states[0].reason, 'again');
      t = io(dir);
      assert.equal(await postsuperCommand(['-d', 'ALL'], t), 0);
      assert.equal(t.err(), 'postsuper: Deleted: 3 messages\n');
      assert.equal(q.size, 0);
      // Malformed requests get an error response, and the server carries on.
      assert.deepEqual(await controlRequest(controlSocketPath(dir), { op: 'nope' } as never), { ok: false, error: 'unknown op: "nope"' });
      assert.deepEqual(await controlRequest(controlSocketPath(dir), { op: 'delete', ids: 5 } as never), {
        ok: false,
        error: 'delete needs ids: "ALL" or a list of strings',
      });
      assert.deepEqual(await controlRequest(controlSocketPath(dir), { op: 'flush' }), { ok: true, flush: 'ok' });
      // A second server on the same socket is refused.
      await assert.rejects(startControlServer(controlSocketPath(dir), handlers), {
        message: `control socket ${controlSocketPath(dir)}: another server is already listening`,
      });
    } finally {
      await server.close();
      await q.close();
    }
    // After the server is gone, a stale socket file means "mail system is down".
    const t = io(dir);
    assert.equal(await postqueueCommand(['-f'], t), 69);
  } finally {
    cleanup();
  }
});
