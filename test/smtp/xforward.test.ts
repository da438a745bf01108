// XFORWARD and XCLIENT as the delivery client sends them: the commands built from a queued
// message's client (table-driven), and a raw peer on loopback that announces both and refuses
// them — a refusal is a warning and the mail still goes; a session after XCLIENT is not reused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { Maillog } from '../../src/log/index.js';
import { ConnectionCache, deliver, xclientCommand, xforwardCommands, type OriginalClient, type OutboundMessage } from '../../src/smtp/index.js';

const client: OriginalClient = { name: 'mail.client.test', address: '192.0.2.7', helo: 'helo name+x', protocol: 'ESMTPS' };
const ALL_XF = ['NAME', 'ADDR', 'PROTO', 'HELO', 'SOURCE', 'PORT', 'IDENT'];
const ALL_XC = ['NAME', 'ADDR', 'PROTO', 'HELO', 'PORT', 'LOGIN'];

test('XFORWARD and XCLIENT commands carry what the server announced, xtext-encoded', () => {
  const cases: Array<{ desc: string; fn: () => unknown; expected: unknown }> = [
    { desc: 'xforward, everything offered', fn: () => xforwardCommands(ALL_XF, client), expected: ['XFORWARD NAME=mail.client.test ADDR=192.0.2.7', 'XFORWARD PROTO=ESMTPS HELO=helo+20name+2Bx SOURCE=REMOTE'] },
    { desc: 'xforward, unknown name left out', fn: () => xforwardCommands(ALL_XF, { ...client, name: 'unknown' }), expected: ['XFORWARD ADDR=192.0.2.7', 'XFORWARD PROTO=ESMTPS HELO=helo+20name+2Bx SOURCE=REMOTE'] },
    { desc: 'xforward, only ADDR offered', fn: () => xforwardCommands(['ADDR'], client), expected: ['XFORWARD ADDR=192.0.2.7'] },
    { desc: 'xforward, nothing usable', fn: () => xforwardCommands(['IDENT'], client), expected: [] },
    { desc: 'xclient, everything offered', fn: () => xclientCommand(ALL_XC, client), expected: 'XCLIENT NAME=mail.client.test ADDR=192.0.2.7 PROTO=ESMTP HELO=helo+20name+2Bx' },
    { desc: 'xclient, unknown name, IPv6, SMTP', fn: () => xclientCommand(ALL_XC, { name: 'unknown', address: '2001:db8::7', helo: 'h', protocol: 'SMTP' }), expected: 'XCLIENT NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8::7 PROTO=SMTP HELO=h' },
    { desc: 'xclient, nothing offered that we know', fn: () => xclientCommand(['LOGIN'], client), expected: undefined },
  ];
  for (const c of cases) assert.deepEqual(c.fn(), c.expected, c.desc);
});

/** A peer announcing XFORWARD and XCLIENT; refuses both when `refuse`, else accepts (XCLIENT: 220). */
async function peer(refuse: boolean) {
  const seen: string[][] = [];
  const socks = new Set<Socket>();
  const server = createServer((s) => {
    const mine: string[] = [];
    seen.push(mine);
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => undefined);
    let inData = false;
    let buf = '';
    s.write('220 peer.test ESMTP\r\n');
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (inData) {
          if (line === '.') { inData = false; s.write('250 2.0.0 Ok: queued\r\n'); }
          continue;
        }
        mine.push(line);
        const cmd = line.split(' ')[0].toUpperCase();
        if (cmd === 'EHLO') s.write('250-peer.test\r\n250-XFORWARD NAME ADDR PROTO HELO SOURCE\r\n250 XCLIENT NAME ADDR PROTO HELO\r\n');
        else if (cmd === 'XFORWARD') s.write(refuse ? '550 5.7.0 Error: insufficient authorization\r\n' : '250 2.0.0 Ok\r\n');
        else if (cmd === 'XCLIENT') s.write(refuse ? '550 5.7.0 Error: insufficient authorization\r\n' : '220 peer.test ESMTP\r\n');
        else if (cmd === 'DATA') { inData = true; s.write('354 go\r\n'); }
        else if (cmd === 'QUIT') s.end('221 2.0.0 Bye\r\n');
        else s.write('250 2.0.0 Ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.3', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () => new Promise<void>((r) => { for (const s of socks) s.destroy(); server.close(() => r()); }),
  };
}

function message(): OutboundMessage {
  const content = 'Subject: x\r\n\r\nhi\r\n';
  return { queueId: 'XF1', sender: 's@client.test', recipients: [{ address: 'u@primary.test' }], body: () => Readable.from([Buffer.from(content)]), size: content.length, client };
}

test('refused XFORWARD/XCLIENT: a warning, the mail goes; after an accepted XCLIENT the session is not reused', async () => {
  const log = new Maillog();
  log.open(undefined, { quiet: true });
  const lines: string[] = [];
  log.addSink((r) => lines.push(r.text));
  const dns = { mx: async () => ({ status: 'notFound' as const }), a: async () => ({ status: 'notFound' as const }), aaaa: async () => ({ status: 'notFound' as const }) };
  for (const refuse of [true, false]) {
    const p = await peer(refuse);
    const cache = new ConnectionCache({ idleSeconds: 5 });
    try {
      lines.length = 0;
      const opts = { dns, isSelf: () => false, relayhost: `[127.0.0.3]:${p.port}`, logger: log.logger('smtp'), cache, session: { heloName: 'mx2.backup.test', xforward: true, xclient: true } };
      const [r1] = await deliver(message(), opts);
      const [r2] = await deliver(message(), opts);
      assert.equal(r1.status, 'sent');
      assert.equal(r2.status, 'sent');
      if (refuse) {
        assert.ok(lines.includes(`warning: host 127.0.0.3[127.0.0.3]:${p.port} said: 550 5.7.0 Error: insufficient authorization (in reply to XCLIENT command)`), lines.join('\n'));
        assert.ok(lines.includes(`warning: host 127.0.0.3[127.0.0.3]:${p.port} said: 550 5.7.0 Error: insufficient authorization (in reply to XFORWARD name/address command)`), lines.join('\n'));
        assert.equal(p.seen.length, 1, 'one session, reused');
        assert.deepEqual(p.seen[0].filter((l) => /^X/.test(l)).length, 6, 'XCLIENT + two XFORWARD per message');
      } else {
        assert.equal(p.seen.length, 2, 'a new session per message after XCLIENT');
        for (const s of p.seen) {
          assert.deepEqual(s.slice(0, 3), ['EHLO mx2.backup.test', 'XCLIENT NAME=mail.client.test ADDR=192.0.2.7 PROTO=ESMTP HELO=helo+20name+2Bx', 'EHLO helo name+x']);
          assert.ok(!s.some((l) => l.startsWith('XFORWARD')), 'no XFORWARD after XCLIENT');
        }
      }
    } finally {
      await cache.closeAll();
      await p.close();
    }
  }
});

test('no XFORWARD/XCLIENT for mail from this host itself or without a client address', async () => {
  const p = await peer(false);
  try {
    const dns = { mx: async () => ({ status: 'notFound' as const }), a: async () => ({ status: 'notFound' as const }), aaaa: async () => ({ status: 'notFound' as const }) };
    const opts = { dns, isSelf: (ip: string) => ip === '127.0.0.1', relayhost: `[127.0.0.3]:${p.port}`, session: { heloName: 'mx2.backup.test', xforward: true, xclient: true } };
    const own = { ...message(), client: { name: 'localhost', address: '127.0.0.1', helo: 'mx2.backup.test', protocol: 'SMTP' } };
    const none = { ...message(), client: { name: '', address: '', helo: '', protocol: 'SMTP' } };
    assert.equal((await deliver(own, opts))[0].status, 'sent');
    assert.equal((await deliver(none, opts))[0].status, 'sent');
    assert.equal(p.seen.length, 2);
    for (const s of p.seen) assert.ok(!s.some((l) => /^X(FORWARD|CLIENT)/.test(l)), s.join('\n'));
  } finally {
    await p.close();
  }
});
