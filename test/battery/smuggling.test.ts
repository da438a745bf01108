// SMTP smuggling inbound, at server level (issue 6): every end-of-data variant published by
// SEC Consult in 2023 (bare LF/CR forms of <CRLF>.<CRLF>, a NUL before the dot, a bare CR or LF
// before ".\r\n"), each followed by a smuggled MAIL FROM/RCPT TO/DATA for a second recipient, sent
// to the real `backstop start` and delivered out to the primary (a sink on 127.0.0.2). The
// primary must get exactly one message per client transaction, with the smuggled commands in it
// as data and CRLF-only line endings; the smuggled recipient gets nothing; the log shows one
// queue ID per transaction. Trusts the helpers in test/helpers and test/battery/harness.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startDnsServer } from '../helpers/dnsserver.js';
import { startSink } from '../helpers/sink.js';
import { freePort, sleep } from '../helpers/net.js';
import { RawClient } from '../helpers/smtp-client.js';
import { mainCf, makeConfigDir, startBackstop, tokenOf, worldZone } from './harness.js';

/** The fake end-of-data sequences (SEC Consult, "SMTP Smuggling", December 2023, and follow-ups). */
const VARIANTS: Array<{ name: string; eod: string }> = [
  { name: '\\n.\\n', eod: '\n.\n' },
  { name: '\\n.\\r\\n', eod: '\n.\r\n' },
  { name: '\\r.\\r\\n', eod: '\r.\r\n' },
  { name: '\\r\\n.\\r', eod: '\r\n.\r' },
  { name: '\\r\\n.\\n', eod: '\r\n.\n' },
  { name: '\\r\\n\\x00.\\r\\n', eod: '\r\n\x00.\r\n' },
  { name: 'bare CR before .\\r\\n', eod: '\r\n\r.\r\n' },
  { name: 'bare LF before .\\r\\n', eod: '\r\n\n.\r\n' },
  { name: 'bare CR, text, then .\\r\\n', eod: 'x\r.\r\n' },
];

const SMUGGLED = 'smuggled@primary.test';

test('SMTP smuggling inbound: one message per transaction, smuggled commands stay data, CRLF only', { timeout: 60_000 }, async (t) => {
  const dns = await startDnsServer(worldZone());
  const primaryPort = await freePort('127.0.0.2');
  const sink = await startSink({ host: '127.0.0.2', port: primaryPort });
  const port = await freePort();
  const dir = makeConfigDir({
    'main.cf': mainCf(dns.servers, primaryPort),
    'master.cf': `127.0.0.1:${port} inet n - n - - smtpd\n`,
  });
  const server = await startBackstop(dir, port);
  const queueIds: string[] = [];
  try {
    for (const [i, v] of VARIANTS.entries()) {
      const c = await RawClient.connect(port);
      try {
        assert.equal((await c.read(10_000)).code, 220);
        assert.equal((await c.cmd('EHLO client.test')).code, 250);
        assert.equal((await c.cmd('MAIL FROM:<someone@sender.test>', 10_000)).code, 250);
        assert.equal((await c.cmd('RCPT TO:<alice@primary.test>', 10_000)).code, 250);
        assert.equal((await c.cmd('DATA')).code, 354);
        // Everything up to the final CRLF.CRLF in one write, as a smuggling client sends it.
        c.write(
          `Subject: smuggling ${v.name}\r\nX-Token: ${i}\r\n\r\nlegit body${v.eod}` +
            `MAIL FROM:<ceo@primary.test>\r\nRCPT TO:<${SMUGGLED}>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n.\r\n`,
        );
        const r = await c.read(10_000);
        const m = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec(r.text);
        assert.ok(m, `variant ${v.name}: ${r.text}`);
        queueIds.push(m[1]);
        // Nothing else may have been executed: the next reply is QUIT's.
        const q = await c.cmd('QUIT');
        assert.match(q.text, /^221 2\.0\.0 /, `variant ${v.name}: extra replies before QUIT's: ${q.text}`);
        assert.equal(c.pending(), '');
      } finally {
        c.close();
      }
    }
    const msgs = await sink.waitFor(VARIANTS.length, 30_000);
    await sleep(1500); // a smuggled second message would come right behind
    assert.equal(sink.messages.length, VARIANTS.length);
    const tokens = msgs.map((m) => tokenOf(m.raw)).sort((a, b) => a - b);
    assert.deepEqual(tokens, VARIANTS.map((_, i) => i));
    for (const msg of sink.messages) {
      const v = VARIANTS[tokenOf(msg.raw)];
      const raw = msg.raw.toString('latin1');
      assert.deepEqual(msg.to, ['alice@primary.test'], v.name);
      assert.equal(msg.from, 'someone@sender.test', v.name);
      // CRLF-only line endings: no bare CR, no bare LF.
      assert.doesNotMatch(raw, /\r(?!\n)|(?<!\r)\n/, `variant ${v.name} has a bare CR or LF: ${JSON.stringify(raw.slice(-200))}`);
      // The smuggled commands arrived as lines of text in the one message.
      for (const line of ['MAIL FROM:<ceo@primary.test>', `RCPT TO:<${SMUGGLED}>`, 'DATA', 'Subject: smuggled', 'smuggled body']) {
        assert.ok(raw.includes(`\r\n${line}\r\n`), `variant ${v.name}: "${line}" not in the data: ${JSON.stringify(raw.slice(-300))}`);
      }
      assert.ok(raw.includes('legit body'), v.name);
    }
    assert.equal(sink.messages.filter((m) => m.to.includes(SMUGGLED)).length, 0);
    assert.equal(sink.mailCommands, VARIANTS.length);
    assert.equal(sink.rcptCommands, VARIANTS.length);
    const log = server.log();
    assert.doesNotMatch(log, new RegExp(`to=<${SMUGGLED.replace('.', '\\.')}>`));
    assert.doesNotMatch(log, /from=<ceo@primary\.test>/);
    // One queue ID per transaction: each reply's ID is delivered once, and no other ID appears.
    assert.equal(new Set(queueIds).size, VARIANTS.length);
    const logged = new Set([...log.matchAll(/ ([0-9A-Za-z]{6,}): from=</g)].map((m) => m[1]));
    assert.deepEqual([...logged].sort(), [...queueIds].sort());
    for (const id of queueIds) assert.equal((log.match(new RegExp(`${id}: to=<alice@primary\\.test>.*status=sent`, 'g')) ?? []).length, 1, id);
    const figure = `smuggling: ${VARIANTS.length} variants, ${sink.messages.length} messages at the primary, 0 to the smuggled recipient`;
    t.diagnostic(figure);
    console.log(figure);
  } finally {
    await server.stop();
    await sink.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
