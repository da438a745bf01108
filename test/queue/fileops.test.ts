import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { FileOps } from '../../src/queue/fileops.js';
import { tempDir } from './helpers.js';

test('renames and unlinks of one turn run in order in the helper thread; errors keep their code and path', async () => {
  const { dir, cleanup } = tempDir();
  const ops = new FileOps();
  try {
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    for (let i = 0; i < 50; i++) writeFileSync(join(dir, 'a', `f${i}`), String(i));
    // One turn: move all fifty, remove the even ones from their new place, one file that is not there.
    const moves = Array.from({ length: 50 }, (_, i) => ops.rename(join(dir, 'a', `f${i}`), join(dir, 'b', `f${i}`)));
    const removals = Array.from({ length: 25 }, (_, i) => ops.unlink(join(dir, 'b', `f${2 * i}`)));
    const missing = ops.unlink(join(dir, 'b', 'nothing-here'));
    await Promise.all([...moves, ...removals]);
    await assert.rejects(missing, (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && err.syscall === 'unlink' && err.path === join(dir, 'b', 'nothing-here'));
    assert.deepEqual(readdirSync(join(dir, 'a')), []);
    assert.deepEqual(readdirSync(join(dir, 'b')).sort(), Array.from({ length: 25 }, (_, i) => `f${2 * i + 1}`).sort());
    // A rename whose source is gone fails alone; the operations around it succeed.
    writeFileSync(join(dir, 'a', 'x'), 'x');
    const [r1, r2, r3] = await Promise.allSettled([ops.rename(join(dir, 'a', 'gone'), join(dir, 'b', 'gone')), ops.rename(join(dir, 'a', 'x'), join(dir, 'b', 'x')), ops.unlink(join(dir, 'b', 'f1'))]);
    assert.equal(r1.status, 'rejected');
    assert.equal((r1 as PromiseRejectedResult).reason.code, 'ENOENT');
    assert.equal(r2.status, 'fulfilled');
    assert.equal(r3.status, 'fulfilled');
    assert.ok(existsSync(join(dir, 'b', 'x')));
    assert.ok(!existsSync(join(dir, 'b', 'f1')));
  } finally {
    await ops.close();
    cleanup();
  }
});

test('close waits for the operations already asked for, and later ones fail', async () => {
  const { dir, cleanup } = tempDir();
  const ops = new FileOps();
  try {
    for (let i = 0; i < 20; i++) writeFileSync(join(dir, `f${i}`), 'x');
    const removals = Array.from({ length: 20 }, (_, i) => ops.unlink(join(dir, `f${i}`)));
    await ops.close();
    assert.deepEqual(readdirSync(dir), []);
    await Promise.all(removals);
    await assert.rejects(ops.unlink(join(dir, 'f0')), /closed/);
  } finally {
    cleanup();
  }
});

test('a move into active/ reads the file in the same trip: whole when short, its first bytes when long', async () => {
  const { dir, cleanup } = tempDir();
  const ops = new FileOps();
  try {
    writeFileSync(join(dir, 'short'), 'short file');
    writeFileSync(join(dir, 'long'), Buffer.alloc(100, 'x'));
    const [short, long] = await Promise.all([ops.renameAndRead(join(dir, 'short'), join(dir, 'short2'), 64), ops.renameAndRead(join(dir, 'long'), join(dir, 'long2'), 64)]);
    assert.equal(short?.toString(), 'short file');
    assert.equal(long?.length, 64);
    assert.ok(existsSync(join(dir, 'short2')) && existsSync(join(dir, 'long2')));
    await assert.rejects(ops.renameAndRead(join(dir, 'gone'), join(dir, 'gone2'), 64), (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && err.syscall === 'rename');
  } finally {
    await ops.close();
    cleanup();
  }
});

test('a helper thread that dies fails the operations it held, and the next operation starts a new one', async () => {
  const { dir, cleanup } = tempDir();
  const ops = new FileOps();
  try {
    writeFileSync(join(dir, 'a'), 'x');
    await ops.rename(join(dir, 'a'), join(dir, 'b'));
    const thread = (ops as unknown as { worker: Worker }).worker;
    // Sent at the end of this turn; the thread's death is announced right after, in the same
    // phase of the event loop, before its answer can be read.
    const held = ops.unlink(join(dir, 'b'));
    setImmediate(() => thread.emit('exit', 1));
    await assert.rejects(held, /exited/);
    thread.ref();
    await thread.terminate();
    // Whether or not the unlink ran, the queue goes on: a new thread takes the next operation.
    writeFileSync(join(dir, 'c'), 'x');
    await ops.rename(join(dir, 'c'), join(dir, 'd'));
    assert.ok(existsSync(join(dir, 'd')));
  } finally {
    await ops.close();
    cleanup();
  }
});
