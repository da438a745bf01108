import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, truncateSync, statSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { enqueue, Queue, isValidQueueId, readQueueHeadSync, encodeRecord, REC, type WriteFn } from '../../src/queue/index.js';
import { SmtpError } from '../../src/mail/index.js';
import { tempDir, envelope, message, chunks, collect, quietLog } from './helpers.js';

test('accept writes a durable file that reads back identical', async () => {
  const { dir, cleanup } = tempDir();
  const { log, lines } = quietLog();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: log });
    const content = message('Line one\r\nLine two\r\n');
    const env = envelope({
      recipients: [{ address: 'a@primary.test', notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;a@primary.test' }, { address: 'b@primary.test' }],
      ret: 'HDRS',
      envid: 'env-1',
      body: '8BITMIME',
      smtputf8: true,
      client: { name: 'mail.client.test', address: '192.0.2.7', helo: 'client.test', protocol: 'ESMTPSA', saslUsername: 'joe' },
    });
    const id = await enqueue(q, env, chunks(content.subarray(0, 5), content.subarray(5)));
    assert.match(id, /^[0-9A-F]{6,}$/);
    assert.ok(isValidQueueId(id));
    assert.deepEqual(readdirSync(join(dir, 'active')), [id]);
    assert.deepEqual(readdirSync(join(dir, 'incoming')), []);
    const loaded = await q.load(id);
    assert.deepEqual(loaded.envelope, env);
    assert.equal(loaded.messageSize, content.length);
    assert.deepEqual(loaded.states, [{ status: 'pending' }, { status: 'pending' }]);
    assert.deepEqual(await collect(q.content(id)), content);
    assert.deepEqual(await collect(q.contentStream(id)), content);
    assert.deepEqual(lines, [
      `smtpd: ${id}: client=mail.client.test[192.0.2.7]`,
      `cleanup: ${id}: message-id=<m1@client.test>`,
      `qmgr: ${id}: from=<sender@client.test>, size=${content.length}, nrcpt=2 (queue active)`,
    ]);
    await q.close();
    // A fresh process sees the same message.
    const q2 = await Queue.open({ queueDirectory: dir, maillog: log });
    assert.deepEqual(q2.recovery.active, [id]);
    assert.deepEqual((await q2.load(id)).envelope, env);
    assert.deepEqual(await collect(q2.content(id)), content);
    await q2.close();
  } finally {
    cleanup();
  }
});

test('large content spans many records and a Readable source works', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
    const line = 'x'.repeat(998) + '\r\n';
    const content = Buffer.from('Subject: big\r\n\r\n' + line.repeat(1200)); // ~1.2 MB
    const id = await enqueue(q, envelope(), Readable.from([content.subarray(0, 70000), content.subarray(70000)]));
    assert.deepEqual(await collect(q.content(id)), content);
    assert.equal(q.get(id)!.messageSize, content.length);
    await q.close();
  } finally {
    cleanup();
  }
});

test('missing Message-ID logs an empty message-id, folded one is unfolded', async () => {
  const { dir, cleanup } = tempDir();
  const { log, lines } = quietLog();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: log });
    const a = await enqueue(q, envelope(), chunks(message('b\r\n', 'Subject: x\r\n')));
    const b = await enqueue(q, envelope(), chunks(message('b\r\n', 'Message-Id:\r\n <folded@x>\r\n')));
    assert.ok(lines.includes(`cleanup: ${a}: message-id=<>`));
    assert.ok(lines.includes(`cleanup: ${b}: message-id=<folded@x>`));
    await q.close();
  } finally {
    cleanup();
  }
});

test('concurrent accepts share directory fsyncs (group commit) and are all distinct and durable', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
    const n = 60;
    const ids = await Promise.all(
      Array.from({ length: n }, (_, i) => enqueue(q, envelope({ sender: `s${i}@client.test` }), chunks(message(`body ${i}\r\n`)))),
    );
    assert.equal(new Set(ids).size, n);
    assert.ok(q.dirSyncCount('active') < n, `expected fewer than ${n} directory fsyncs, got ${q.dirSyncCount('active')}`);
    await q.close();
    const q2 = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
    assert.equal(q2.size, n);
    for (let i = 0; i < n; i++) {
      assert.equal((await q2.load(ids[i])).envelope.sender, `s${i}@client.test`);
      assert.deepEqual(await collect(q2.content(ids[i])), message(`body ${i}\r\n`));
    }
    await q2.close();
  } finally {
    cleanup();
  }
});

function failingWrite(code: string, afterBytes: number): (w: WriteFn) => WriteFn {
  let written = 0;
  return (write) => (fd, bufs, pos) => {
    const total = bufs.reduce((a, b) => a + b.length, 0);
    if (written + total > afterBytes) {
      // Write what fits (a partial file), then fail like the kernel would.
      const fit = Math.max(0, afterBytes - written);
      if (fit > 0) write(fd, [Buffer.concat(bufs).subarray(0, fit)], pos);
      written += fit;
      throw Object.assign(new Error(`${code}: injected`), { code });
    }
    written += total;
    write(fd, bufs, pos);
  };
}

test('ENOSPC → 452 4.3.1 Insufficient system storage, nothing partial left', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, wrapWrite: failingWrite('ENOSPC', 100) });
    const big = Buffer.alloc(600_000, 'a');
    await assert.rejects(enqueue(q, envelope(), chunks(big)), (err: unknown) => {
      assert.ok(err instanceof SmtpError);
      assert.equal(err.message, '452 4.3.1 Insufficient system storage');
      assert.equal(err.responseCode, 452);
      return true;
    });
    for (const sub of ['incoming', 'active', 'deferred', 'hold', 'corrupt']) assert.deepEqual(readdirSync(join(dir, sub)), []);
    assert.equal(q.size, 0);
    await q.close();
  } finally {
    cleanup();
  }
});

test('other write error → 451 4.3.0 Error: queue file write error, nothing left', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, wrapWrite: failingWrite('EIO', 0) });
    await assert.rejects(enqueue(q, envelope(), chunks(message())), { message: '451 4.3.0 Error: queue file write error', responseCode: 451 });
    assert.deepEqual(readdirSync(join(dir, 'incoming')), []);
    assert.deepEqual(readdirSync(join(dir, 'active')), []);
    await q.close();
  } finally {
    cleanup();
  }
});

test('message_size_limit → 552 5.3.4 and the stream is read to its end', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, messageSizeLimit: 100 });
    let consumed = 0;
    async function* src() {
      for (let i = 0; i < 5; i++) {
        consumed++;
        yield Buffer.alloc(60, 'b');
      }
    }
    await assert.rejects(enqueue(q, envelope(), src()), { message: '552 5.3.4 Message file too big' });
    assert.equal(consumed, 5);
    assert.deepEqual(readdirSync(join(dir, 'incoming')), []);
    await q.close();
  } finally {
    cleanup();
  }
});

test('no recipients → 554 5.5.1', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
    await assert.rejects(enqueue(q, envelope({ recipients: [] }), chunks(message())), { message: '554 5.5.1 Error: no valid recipients' });
    await q.close();
  } finally {
    cleanup();
  }
});

test('a content stream that fails → 451 and no file', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
    async function* broken() {
      yield Buffer.from('Subject: x\r\n');
      throw new Error('client went away');
    }
    await assert.rejects(enqueue(q, envelope(), broken()), (err: unknown) => {
      assert.ok(err instanceof SmtpError);
      assert.equal(err.message, '451 4.3.0 Error: queue file write error');
      assert.equal(err.causeText, 'client went away');
      return true;
    });
    assert.deepEqual(readdirSync(join(dir, 'incoming')), []);
    await q.close();
  } finally {
    cleanup();
  }
});

test('per-recipient and retry state survive a reload', async () => {
  const { dir, cleanup } = tempDir();
  const { log, lines } = quietLog();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: log });
    const env = envelope({ recipients: [{ address: 'a@p.test' }, { address: 'b@p.test' }, { address: 'c@p.test' }] });
    const id = await enqueue(q, env, chunks(message()));
    await q.markDelivered(id, [0], { reason: '250 2.0.0 Ok: queued as X', dsn: '2.0.0', remoteMta: 'mx1.p.test' });
    await q.markBounced(id, [1], { reason: '550 5.1.1 unknown user', dsn: '5.1.1', diagnosticCode: 'smtp; 550 5.1.1 unknown user' });
    await q.markDeferred(id, [2], 'connect to mx1.p.test[127.0.0.2]:25: Connection refused');
    await q.defer(id, 1_900_000_000_000, 'connect to mx1.p.test[127.0.0.2]:25: Connection refused');
    await q.markDelayWarningSent(id);
    assert.equal(q.get(id)!.queue, 'deferred');
    assert.equal(q.get(id)!.status, 'DBP');
    await assert.rejects(q.markDelivered(id, [3], 'x'), { message: `${id}: recipient index 3 out of range (0..2)` });
    await assert.rejects(q.markDelivered('ABCDEF', [0], 'x'), { message: 'ABCDEF: no such message in the queue' });
    await q.close();
    const q2 = await Queue.open({ queueDirectory: dir, maillog: log });
    const h = await q2.load(id);
    assert.equal(h.queue, 'deferred');
    assert.deepEqual(
      h.states.map((s) => ({ ...s, time: undefined })),
      [
        { status: 'delivered', reason: '250 2.0.0 Ok: queued as X', dsn: '2.0.0', remoteMta: 'mx1.p.test', time: undefined },
        { status: 'bounced', reason: '550 5.1.1 unknown user', dsn: '5.1.1', diagnosticCode: 'smtp; 550 5.1.1 unknown user', time: undefined },
        { status: 'pending', reason: 'connect to mx1.p.test[127.0.0.2]:25: Connection refused', time: undefined },
      ],
    );
    assert.deepEqual(h.retry, {
      nextAttempt: 1_900_000_000_000,
      attempts: 1,
      lastReason: 'connect to mx1.p.test[127.0.0.2]:25: Connection refused',
      delayWarningSent: true,
      forcedExpire: false,
    });
    assert.equal(q2.get(id)!.status, 'DBP');
    // The queue manager's load takes the statuses and the retry state from the index the journal
    // rebuilt (in this process and after a restart alike), with the same envelope, and no reasons.
    const light = await q2.load(id, { statesFromIndex: true });
    assert.deepEqual(light.states, [{ status: 'delivered' }, { status: 'bounced' }, { status: 'pending' }]);
    assert.deepEqual(light.retry, h.retry);
    assert.deepEqual(light.envelope, h.envelope);
    assert.deepEqual([light.contentOffset, light.endOffset, light.messageSize], [h.contentOffset, h.endOffset, h.messageSize]);
    await q2.markDelivered(id, [2], '250 ok');
    assert.deepEqual((await q2.load(id, { statesFromIndex: true })).states.map((s) => s.status), ['delivered', 'bounced', 'delivered']);
    assert.deepEqual(await collect(q2.content(id)), message());
    await q2.remove(id);
    assert.ok(lines.includes(`qmgr: ${id}: removed`));
    assert.deepEqual(readdirSync(join(dir, 'deferred')), []);
    await q2.close();
  } finally {
    cleanup();
  }
});

test('a long journal is compacted and keeps the state', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, compactThreshold: 1000 });
    const id = await enqueue(q, envelope(), chunks(message()));
    for (let i = 0; i < 30; i++) await q.markDeferred(id, [0], `attempt ${i}: connection refused`);
    const size = statSync(join(dir, 'active', id)).size;
    assert.ok(size < 2000, `file should have been compacted, size ${size}`);
    await q.close();
    const q2 = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
    assert.equal((await q2.load(id)).states[0].reason, 'attempt 29: connection refused');
    assert.deepEqual(await collect(q2.content(id)), message());
    await q2.close();
  } finally {
    cleanup();
  }
});

test('events: accepted, moved, updated, removed', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
    const seen: string[] = [];
    q.on('accepted', (id, e) => seen.push(`accepted ${id === e.id} ${e.queue} ${e.recipients.join(',')}`));
    q.on('moved', (_id, from, to) => seen.push(`moved ${from}->${to}`));
    q.on('updated', (_id, e) => seen.push(`updated ${e.status}`));
    q.on('removed', (_id, from) => seen.push(`removed ${from}`));
    const id = await enqueue(q, envelope(), chunks(message()));
    await q.markDelivered(id, [0], '250 ok');
    await q.hold(id);
    await q.release(id);
    await q.remove(id);
    assert.deepEqual(seen, ['accepted true active user@primary.test', 'updated D', 'moved active->hold', 'moved hold->deferred', 'removed deferred']);
    await q.close();
  } finally {
    cleanup();
  }
});

test('start-up recovery: incoming removed, truncated and garbage files to corrupt/, the rest carries on', async () => {
  const { dir, cleanup } = tempDir();
  const { log, lines } = quietLog();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: log });
    const good = await enqueue(q, envelope(), chunks(message()));
    const deferred = await enqueue(q, envelope(), chunks(message()), { queue: 'deferred' });
    const cut = await enqueue(q, envelope(), chunks(message('x'.repeat(5000))));
    const noEnd = await enqueue(q, envelope(), chunks(message()));
    await q.close();
    const cutPath = join(dir, 'active', cut);
    truncateSync(cutPath, statSync(cutPath).size - 3000);
    const noEndPath = join(dir, 'active', noEnd);
    truncateSync(noEndPath, statSync(noEndPath).size - 3); // END record cut short
    writeFileSync(join(dir, 'deferred', 'ABC123'), 'this is not a queue file');
    // A writer that is gone (a pid that just exited; a fixed number may belong to a live process).
    const gone = spawnSync('true').pid;
    writeFileSync(join(dir, 'incoming', `t${gone}.1`), 'half a message');
    const q2 = await Queue.open({ queueDirectory: dir, maillog: log });
    assert.deepEqual(q2.recovery.removedIncoming, [`t${gone}.1`]);
    assert.deepEqual(q2.recovery.active.sort(), [good]);
    assert.deepEqual(q2.recovery.corrupt.sort(), ['ABC123', cut, noEnd].sort());
    assert.equal(q2.recovery.messages, 2);
    assert.deepEqual(readdirSync(join(dir, 'corrupt')).sort(), ['ABC123', cut, noEnd].sort());
    assert.deepEqual(readdirSync(join(dir, 'incoming')), []);
    assert.ok(q2.has(good) && q2.has(deferred));
    assert.ok(lines.includes(`qmgr: warning: incoming/t${gone}.1: removing queue file that was never committed`));
    assert.ok(lines.includes('qmgr: warning: deferred/ABC123: not a Backstop queue file (bad VERSION record); moved to corrupt/ABC123'));
    assert.ok(lines.includes(`qmgr: warning: active/${cut}: file is truncated: no END record; moved to corrupt/${cut}`));
    assert.ok(lines.includes(`qmgr: warning: active/${noEnd}: file is truncated: no END record; moved to corrupt/${noEnd}`));
    await q2.close();
  } finally {
    cleanup();
  }
});

test('a torn state update is dropped, the file truncated, and the previous state stands', async () => {
  const { dir, cleanup } = tempDir();
  const { log, lines } = quietLog();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: log });
    const id = await enqueue(q, envelope(), chunks(message()));
    await q.markDeferred(id, [0], 'first');
    await q.close();
    const path = join(dir, 'active', id);
    const before = statSync(path).size;
    const rec = encodeRecord(REC.UPDATE, '00000000 {"t":1,"r":{"i":[0],"s":"delivered"}}');
    appendFileSync(path, rec.subarray(0, rec.length - 5));
    const q2 = await Queue.open({ queueDirectory: dir, maillog: log });
    assert.deepEqual(q2.recovery.torn, [id]);
    assert.equal(statSync(path).size, before);
    assert.equal((await q2.load(id)).states[0].reason, 'first');
    assert.ok(lines.includes(`qmgr: warning: active/${id}: dropped incomplete state update at offset ${before}`));
    await q2.markDelivered(id, [0], 'ok');
    await q2.close();
    const q3 = await Queue.open({ queueDirectory: dir, maillog: log });
    assert.equal((await q3.load(id)).states[0].status, 'delivered');
    await q3.close();
  } finally {
    cleanup();
  }
});

test('a damaged body is caught by the checksum when the content is read', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
    const id = await enqueue(q, envelope(), chunks(message('secret body\r\n')));
    const path = join(dir, 'active', id);
    const buf = readFileSync(path);
    const at = buf.indexOf('secret');
    buf[at] = 'S'.charCodeAt(0);
    writeFileSync(path, buf);
    await assert.rejects(collect(q.content(id)), { name: 'QueueFileError', message: 'checksum mismatch: the queue file is damaged' });
    // The head is still readable, so start-up keeps it (delivery decides what to do).
    assert.equal(readQueueHeadSync(path).messageSize, message('secret body\r\n').length);
    await q.close();
  } finally {
    cleanup();
  }
});

test('a small file read whole by load() gives the delivery its content without a second read; damage read then is still caught', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log });
    const id = await enqueue(q, envelope(), chunks(message('kept body\r\n')));
    const path = join(dir, 'active', id);
    await q.load(id);
    // The file's bytes are gone from disk: the content still comes, from what load() read.
    const saved = readFileSync(path);
    writeFileSync(path, '');
    assert.deepEqual(await collect(q.content(id)), message('kept body\r\n'));
    // Kept once: the next read goes to the file.
    await assert.rejects(collect(q.content(id)), { name: 'QueueFileError' });
    // Damaged bytes read by load() fail the checksum as a damaged file does.
    const bad = Buffer.from(saved);
    bad[bad.indexOf('kept')] = 'K'.charCodeAt(0);
    writeFileSync(path, bad);
    await q.load(id);
    writeFileSync(path, saved);
    await assert.rejects(collect(q.content(id)), { name: 'QueueFileError', message: 'checksum mismatch: the queue file is damaged' });
    assert.deepEqual(await collect(q.content(id)), message('kept body\r\n'));
    await q.close();
  } finally {
    cleanup();
  }
});

test('the lock keeps a second opener out while the first is open', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, lock: true });
    // Same PID is alive, so the lock is held: waiting 0 ms fails at once.
    await assert.rejects(Queue.open({ queueDirectory: dir, maillog: quietLog().log, lock: true, lockWaitMs: 0 }), {
      name: 'QueueLockedError',
      message: `queue is locked by process ${process.pid} (${join(dir, 'pid', 'queue.lock')})`,
    });
    await q.close();
    const again = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, lock: true, lockWaitMs: 0 });
    await again.close();
    // A stale lock (dead PID) is taken over.
    writeFileSync(join(dir, 'pid', 'queue.lock'), '999999999\n');
    const stale = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, lock: true, lockWaitMs: 0 });
    await stale.close();
  } finally {
    cleanup();
  }
});
