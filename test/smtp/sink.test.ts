// Tests for the SMTP sink helper itself: it is spoken to with raw socket commands, so that the
// other tests can trust what it records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startSink } from '../helpers/sink.js';

/** Sends lines and collects the replies as one string after `expect` complete replies arrived. */
function converse(port: number, host: string, script: string, replies: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect(port, host);
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('timeout: ' + buf)); }, 3000);
    let sent = false;
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (!sent && buf.includes('\r\n')) { sent = true; sock.write(script); }
      const complete = buf.split('\r\n').filter((l) => /^\d{3} /.test(l)).length;
      if (complete >= replies) { clearTimeout(timer); sock.end(); resolve(buf); }
    });
    sock.on('error', reject);
  });
}

test('sink records messages, DSN parameters and rejects unknown users', async () => {
  const sink = await startSink({ users: ['user@primary.test'] });
  try {
    assert.equal(sink.host, '127.0.0.2');
    const out = await converse(sink.port, sink.host,
      'EHLO client.test\r\nMAIL FROM:<s@client.test> RET=HDRS ENVID=abc\r\n' +
      'RCPT TO:<user@primary.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;user@primary.test\r\n' +
      'RCPT TO:<nobody@primary.test>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n', 8);
    assert.match(out, /550 5\.1\.1 <nobody@primary\.test>: Recipient address rejected: User unknown\r\n/);
    assert.match(out, /250[ -]DSN\r\n/);
    const [m] = await sink.waitFor(1, 2000);
    assert.equal(m.from, 's@client.test');
    assert.deepEqual(m.to, ['user@primary.test']);
    assert.equal(m.raw.toString(), 'Subject: x\r\n\r\n.dot\r\n');
    assert.equal(m.dsn.ret, 'HDRS');
    assert.equal(m.dsn.envid, 'abc');
    assert.deepEqual(m.dsn.rcpt, [{ notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;user@primary.test' }]);
    assert.equal(sink.rcptCommands, 2);
    assert.equal(sink.connections, 1);
  } finally {
    await sink.close();
  }
});

test('sink scripted replies and waitFor timeout', async () => {
  const sink = await startSink({
    host: '127.0.0.3',
    rcptReply: (a) => (a.startsWith('busy') ? { code: 450, text: '4.2.0 busy, try later' } : undefined),
  });
  try {
    const out = await converse(sink.port, sink.host, 'HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<busy@x.test>\r\nQUIT\r\n', 5);
    assert.match(out, /450 4\.2\.0 busy, try later\r\n/);
    await assert.rejects(sink.waitFor(1, 50), /sink 127\.0\.0\.3:\d+: 0 of 1 messages after 50 ms/);
  } finally {
    await sink.close();
  }
});
