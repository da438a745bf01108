import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, closeSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { enqueue, Queue, QueueWriter, RecyclePool, RECYCLE_FOLDER, RECYCLE_KEEP_BYTES, type QueueEntry } from '../../src/queue/index.js';
import { tempDir, envelope, message, chunks, collect, quietLog } from './helpers.js';

test('recycle pool: removed files take the names r0..r<limit-1> in turn; a writer takes one under its own name, a large one emptied', async () => {
  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(join(dir, RECYCLE_FOLDER));
    const pool = new RecyclePool(dir, 3);
    const names = [pool.place(), pool.place(), pool.place(), pool.place()].map((p) => p!.slice(join(dir, RECYCLE_FOLDER).length + 1));
    assert.equal(new Set(names.slice(0, 3)).size, 3, 'three different names before one comes back');
    assert.equal(names[3], names[0]);
    for (const n of names.slice(0, 3)) assert.match(n, /^r[0-2]$/);
    assert.equal(new RecyclePool(dir, 0).place(), null, 'limit 0: recycling off');

    // A large file left full by a crash between the move and the emptying is emptied when taken.
    writeFileSync(join(dir, RECYCLE_FOLDER, 'r1'), 'x'.repeat(RECYCLE_KEEP_BYTES + 1));
    const dest = join(dir, 'taken');
    const got = pool.take(dest);
    assert.notEqual(got, null);
    closeSync(got!.fd);
    assert.equal(got!.staleBytes, 0);
    assert.equal(statSync(dest).size, 0, 'emptied before use');
    assert.deepEqual(readdirSync(join(dir, RECYCLE_FOLDER)), []);
    assert.equal(pool.taken, 1);
    assert.equal(pool.take(join(dir, 'again')), null, 'nothing left');
    // A file arriving is seen at the next take (the folder's mtime changed), not a second later.
    // A small one keeps its bytes, and says how many the writer must write over or cut off.
    await new Promise((r) => setTimeout(r, 20)); // past the file system's timestamp tick
    writeFileSync(join(dir, RECYCLE_FOLDER, 'r2'), 'a small delivered message');
    const got2 = pool.take(join(dir, 'again'));
    assert.notEqual(got2, null);
    closeSync(got2!.fd);
    assert.equal(got2!.staleBytes, 'a small delivered message'.length);
    assert.equal(pool.taken, 2);
  } finally {
    cleanup();
  }
});

test('recycle pool: a file with another name (a message after a power failure) or of another user is never emptied', async () => {
  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(join(dir, RECYCLE_FOLDER));
    mkdirSync(join(dir, 'active'));
    const msg = join(dir, 'active', 'ABC123');
    writeFileSync(msg, 'a message that must survive');
    linkSync(msg, join(dir, RECYCLE_FOLDER, 'r0'));
    const pool = new RecyclePool(dir, 10);
    const dest = join(dir, 't1');
    assert.equal(pool.take(dest), null);
    assert.equal(readFileSync(msg, 'utf8'), 'a message that must survive');
    assert.equal(statSync(msg).nlink, 1, 'the stale name is dropped, the message keeps its own');
    assert.ok(!existsSync(dest));

    if (process.getuid?.() === 0) {
      const other = join(dir, RECYCLE_FOLDER, 'r1');
      writeFileSync(other, '');
      chownSync(other, 65534, 65534);
      const pool2 = new RecyclePool(dir, 10);
      assert.equal(pool2.take(join(dir, 't2')), null, "another user's file is not taken");
      assert.ok(!existsSync(join(dir, 't2')));
    }
  } finally {
    cleanup();
  }
});

test('recycle pool: writers of two processes listing the same names never get the same file', async () => {
  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(join(dir, RECYCLE_FOLDER));
    for (let i = 0; i < 40; i++) writeFileSync(join(dir, RECYCLE_FOLDER, `r${i}`), '');
    const a = new RecyclePool(dir, 100);
    const b = new RecyclePool(dir, 100);
    // Each lists all 40 names at its first take, then both take in turn from the same names.
    const inodes = new Set<number>();
    let got = 0;
    for (let i = 0; i < 60; i++) {
      for (const [pool, tag] of [[a, 'a'], [b, 'b']] as const) {
        const dest = join(dir, `${tag}${i}`);
        const taken = pool.take(dest);
        if (taken === null) continue;
        closeSync(taken.fd);
        const ino = statSync(dest).ino;
        assert.ok(!inodes.has(ino), 'a file is taken once');
        inodes.add(ino);
        got++;
      }
    }
    assert.equal(got, 40, 'every file is taken, by one of them');
    assert.equal(a.taken + b.taken, 40);
  } finally {
    cleanup();
  }
});

test('queue: a delivered message file goes to recycle/ (emptied when large) and the next message is written into it, cut to its own length', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, recycleLimit: 5 });
    const big = await enqueue(q, envelope(), chunks(message('b'.repeat(RECYCLE_KEEP_BYTES) + '\r\n')));
    await q.remove(big, 'qmgr', { durable: false, recycle: true });
    const [bigKept] = readdirSync(join(dir, RECYCLE_FOLDER));
    assert.equal(statSync(join(dir, RECYCLE_FOLDER, bigKept)).size, 0, 'nothing of a large message is kept');
    unlinkSync(join(dir, RECYCLE_FOLDER, bigKept));

    // A small file keeps its bytes (one block): the next message writes over them.
    const first = await enqueue(q, envelope(), chunks(message('first, longer than the next one: ' + 'f'.repeat(200) + '\r\n')));
    const ino = statSync(join(dir, 'active', first)).ino;
    const firstSize = statSync(join(dir, 'active', first)).size;
    await q.remove(first, 'qmgr', { durable: false, recycle: true });
    const kept = readdirSync(join(dir, RECYCLE_FOLDER));
    assert.equal(kept.length, 1);
    assert.equal(statSync(join(dir, RECYCLE_FOLDER, kept[0])).size, firstSize, 'a small file keeps its block');
    assert.equal(q.get(first), undefined);

    // The writer lists recycle/ on its first try (in the background), then takes from it.
    const content = message('second\r\n');
    let second = await enqueue(q, envelope(), chunks(content));
    for (let i = 0; i < 50 && statSync(join(dir, 'active', second)).ino !== ino; i++) {
      await new Promise((r) => setTimeout(r, 10));
      second = await enqueue(q, envelope(), chunks(content));
    }
    assert.equal(statSync(join(dir, 'active', second)).ino, ino, 'the same inode, no new one');
    assert.ok(statSync(join(dir, 'active', second)).size < firstSize, 'cut to its own length');
    assert.ok(!readFileSync(join(dir, 'active', second)).includes('fff'), 'no byte of the old message is left');
    assert.deepEqual(await collect(q.content(second)), content);
    // Its journal goes at its own end: a state update reads back after a restart.
    await q.markDeferred(second, [0], { reason: 'primary down', dsn: '4.4.1' });
    assert.deepEqual(readdirSync(join(dir, RECYCLE_FOLDER)), []);
    await q.close();
    // A restart reads it back as the message it now is.
    const q2 = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, recycleLimit: 5 });
    assert.deepEqual(await collect(q2.content(second)), content);
    assert.equal((await q2.load(second)).states[0].reason, 'primary down');
    await q2.close();
  } finally {
    cleanup();
  }
});

test('queue: an administrator deleting a message in active/ unlinks it (a delivery may still read it); in deferred/ it is recycled', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, recycleLimit: 5 });
    const content = message(('x'.repeat(998) + '\r\n').repeat(1000));
    const active = await enqueue(q, envelope(), chunks(content));
    const reading = q.content(active)[Symbol.asyncIterator]();
    const parts: Buffer[] = [];
    const r0 = await reading.next();
    if (!r0.done) parts.push(r0.value);
    await q.remove(active, 'postsuper');
    assert.deepEqual(readdirSync(join(dir, RECYCLE_FOLDER)), []);
    // The delivery that opened it still reads the whole message, though a new one is written.
    await enqueue(q, envelope(), chunks(message(('y'.repeat(998) + '\r\n').repeat(1000))));
    for (let r = await reading.next(); !r.done; r = await reading.next()) parts.push(r.value);
    assert.deepEqual(Buffer.concat(parts), content);

    const deferred = await enqueue(q, envelope(), chunks(message('waiting\r\n')), { queue: 'deferred' });
    await q.remove(deferred, 'postsuper');
    assert.equal(readdirSync(join(dir, RECYCLE_FOLDER)).length, 1);
    await q.close();
  } finally {
    cleanup();
  }
});

test('smtpd-side writer takes the files the queue manager recycled', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const q = await Queue.open({ queueDirectory: dir, maillog: quietLog().log, recycleLimit: 5 });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await enqueue(q, envelope(), chunks(message(`m${i}\r\n`))));
    const inodes = new Set(ids.map((id) => statSync(join(dir, 'active', id)).ino));
    for (const id of ids) await q.remove(id, 'qmgr', { durable: false, recycle: true });
    const committed: QueueEntry[] = [];
    const w = new QueueWriter({ queueDirectory: dir, slot: 1, maillog: quietLog().log, recycleLimit: 5, onCommitted: (e) => committed.push(e) });
    let reused = 0;
    for (let i = 0; i < 20 && reused < 3; i++) {
      const tx = w.begin(envelope());
      await tx.write(chunks(message(`new${i}\r\n`)));
      const id = await tx.commit();
      if (inodes.has(statSync(join(dir, 'active', id)).ino)) reused++;
      else await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(reused, 3);
    await w.close();
    await q.close();
  } finally {
    cleanup();
  }
});
