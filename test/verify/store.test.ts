// The persistent verify cache: LMDB at PATH.lmdb for btree:/hash:/lmdb:PATH, surviving restarts,
// in Postfix's value format, readable and editable by the tables module and postmap while the
// service has it open. Plus the store-opening errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { createVerifier, openVerifyStore, LmdbStore, MemoryStore, CLEANUP_KEY, type ProbeResult } from '../../src/verify/index.js';
import { openTable } from '../../src/tables/index.js';
import { postmapCommand } from '../../src/cli/postmap.js';
import { Clock, captureLog, scratch } from './helpers.js';
import { runCli } from '../helpers/cli.js';

function fakePrimary(users: string[]) {
  const seen: string[] = [];
  const prober = async (a: string): Promise<ProbeResult> => {
    seen.push(a);
    return users.includes(a)
      ? { status: 'deliverable', dsn: '2.1.5', text: '250 2.1.5 Ok', relay: 'mx1.primary.test[127.0.0.2]:25' }
      : { status: 'undeliverable', dsn: '5.1.1', text: `host mx1.primary.test[127.0.0.2] said: 550 5.1.1 <${a}>: Recipient address rejected: User unknown (in reply to RCPT TO command)`, relay: 'mx1.primary.test[127.0.0.2]:25' };
  };
  return { prober, seen };
}

test('btree:PATH: created on first use, survives a restart, Postfix format for postmap -s/-q, postmap -d forces a new probe', async () => {
  const tmp = scratch();
  try {
    const ref = `btree:${tmp.dir}/data/verify`;
    const clock = new Clock(1795546890_000);
    const primary = fakePrimary(['user@primary.test']);
    let store = await openVerifyStore(ref);
    assert.ok(store instanceof LmdbStore, 'an LMDB store');
    assert.ok(existsSync(`${tmp.dir}/data/verify.lmdb`), 'file created on first use');
    let v = createVerifier({ store, prober: primary.prober, params: { address_verify_poll_delay: 1 }, now: clock.now, log: captureLog().log, cleanupTimer: false });
    assert.equal((await v.check('user@primary.test', 'recipient')).status, 'deliverable');
    assert.equal((await v.check('nobody@primary.test', 'recipient')).status, 'undeliverable');
    await v.close();
    await store.close();

    // The tables module's reader and postmap see Postfix's values.
    const out: string[] = [];
    const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => out.push('ERR ' + s), configDir: tmp.dir };
    assert.equal(await postmapCommand(['-s', ref], io), 0);
    assert.equal(out.join(''), [
      `${CLEANUP_KEY}\t1795546890`,
      'nobody@primary.test\t2:0:1795546890:host mx1.primary.test[127.0.0.2] said: 550 5.1.1 <nobody@primary.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)',
      'user@primary.test\t0:0:1795546890:250 2.1.5 Ok',
      '',
    ].join('\n'));
    const table = openTable(ref);
    assert.equal(table.get('user@primary.test'), '0:0:1795546890:250 2.1.5 Ok');
    table.close();

    // Restart: the answer comes from disk, no probe.
    store = await openVerifyStore(ref);
    v = createVerifier({ store, prober: primary.prober, params: { address_verify_poll_delay: 1 }, now: clock.now, log: captureLog().log, cleanupTimer: false });
    const probes = primary.seen.length;
    assert.deepEqual(await v.check('user@primary.test', 'recipient'), { status: 'deliverable', text: '250 2.1.5 Ok' });
    assert.equal(primary.seen.length, probes);

    // postmap -q / -d on the live cache; a deleted entry is probed afresh.
    out.length = 0;
    assert.equal(await postmapCommand(['-q', 'user@primary.test', ref], io), 0);
    assert.equal(out.join(''), '0:0:1795546890:250 2.1.5 Ok\n');
    // postmap -d from another process, as an administrator runs it.
    const del = await runCli(['postmap', '-c', tmp.dir, '-d', 'user@primary.test', ref]);
    assert.equal(del.code, 0, del.stderr);
    clock.advance(5);
    assert.equal((await v.check('user@primary.test', 'recipient')).status, 'deliverable');
    assert.equal(primary.seen.length, probes + 1, 'probed again after postmap -d');
    assert.equal(store.get('user@primary.test'), '0:0:1795546895:250 2.1.5 Ok');
    await v.close();
    await store.close();
  } finally {
    tmp.remove();
  }
});

test('hash: and lmdb: are the same LMDB store; relative paths resolve against the config directory', async () => {
  const tmp = scratch();
  try {
    for (const type of ['hash', 'lmdb']) {
      const store = await openVerifyStore(`${type}:v-${type}`, { baseDir: tmp.dir });
      assert.ok(store instanceof LmdbStore, `${type}: LMDB`);
      assert.equal((store as LmdbStore).path, `${tmp.dir}/v-${type}.lmdb`);
      await store.put('a@b.test', '0:0:1:250 ok');
      assert.equal(store.get('a@b.test'), '0:0:1:250 ok');
      await store.close();
    }
  } finally {
    tmp.remove();
  }
});

test('empty address_verify_map: memory only', async () => {
  const store = await openVerifyStore('  ');
  assert.ok(store instanceof MemoryStore, 'memory');
  assert.equal(store.name, 'internal:verify');
});

test('address_verify_map errors name the map and what is expected', async () => {
  const tmp = scratch();
  try {
    await assert.rejects(openVerifyStore('/var/lib/verify'), { message: 'address_verify_map: "/var/lib/verify": expected type:name (btree:, lmdb:, hash: or redis:), or empty for a memory-only cache' });
    await assert.rejects(openVerifyStore('cidr:/x'), { message: 'address_verify_map: unsupported map type "cidr" in "cidr:/x" (use btree:, lmdb:, hash: or redis:, or leave it empty)' });
    await assert.rejects(openVerifyStore('btree:'), { message: 'address_verify_map: "btree:": missing file name after "btree:"' });
    await assert.rejects(openVerifyStore(`redis:${tmp.dir}/none.cf`), { message: `address_verify_map redis:${tmp.dir}/none.cf: open ${tmp.dir}/none.cf: No such file or directory` });
    writeFileSync(`${tmp.dir}/blocked`, 'a file, not a folder');
    await assert.rejects(openVerifyStore(`btree:${tmp.dir}/blocked/verify`), /^Error: open database .*\/blocked\/verify\.lmdb: /);
  } finally {
    tmp.remove();
  }
});
