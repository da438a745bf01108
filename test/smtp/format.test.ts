// The DATA encoder (CRLF normalization, dot-stuffing, anti-smuggling) and the log formats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeData, formatDeliveryLine, formatTv, parseReply } from '../../src/smtp/index.js';

test('encodeData: CRLF everywhere, dots stuffed, terminator added', () => {
  const cases = [
    { desc: 'plain CRLF', input: 'a\r\nb\r\n', expected: 'a\r\nb\r\n.\r\n' },
    { desc: 'no final newline', input: 'a\r\nb', expected: 'a\r\nb\r\n.\r\n' },
    { desc: 'bare LF', input: 'a\nb\n', expected: 'a\r\nb\r\n.\r\n' },
    { desc: 'bare CR', input: 'a\rb\r', expected: 'a\r\nb\r\n.\r\n' },
    { desc: 'leading dot', input: '.x\r\n..y\r\n', expected: '..x\r\n...y\r\n.\r\n' },
    { desc: 'smuggling \\n.\\r\\n', input: 'a\n.\r\nMAIL FROM:<x>\r\n', expected: 'a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n' },
    { desc: 'smuggling \\r.\\r\\n', input: 'a\r.\r\nRSET\r\n', expected: 'a\r\n..\r\nRSET\r\n.\r\n' },
    { desc: 'smuggling \\n.\\n', input: 'a\n.\nQUIT\n', expected: 'a\r\n..\r\nQUIT\r\n.\r\n' },
    { desc: 'CR CR LF', input: 'a\r\r\nb', expected: 'a\r\n\r\nb\r\n.\r\n' },
    { desc: 'empty', input: '', expected: '.\r\n' },
    { desc: 'dot at very start', input: '.', expected: '..\r\n.\r\n' },
  ];
  for (const c of cases) assert.equal(encodeData(c.input).toString('latin1'), c.expected, c.desc);
});

test('DataEncoder keeps its state across chunk boundaries', async () => {
  const { DataEncoder } = await import('../../src/smtp/index.js');
  const enc = new DataEncoder();
  const parts: Buffer[] = [];
  enc.on('data', (b: Buffer) => parts.push(b));
  for (const piece of ['a\r', '\n', '.', 'b\r', '\r', '\n.', '\r\n']) enc.write(Buffer.from(piece));
  enc.end();
  await new Promise((r) => enc.on('end', r));
  assert.equal(Buffer.concat(parts).toString(), 'a\r\n..b\r\n\r\n..\r\n.\r\n');
});

test('formatTv: Postfix format_tv with 2 significant digits', () => {
  const cases: Array<[number, string]> = [
    [0, '0'], [0.004, '0'], [0.01, '0.01'], [0.04, '0.04'], [0.123, '0.12'], [0.999, '1'],
    [1.234, '1.2'], [3, '3'], [3.04, '3'], [12.3, '12'], [34.2, '34'], [99.6, '100'], [150.6, '151'], [4000.2, '4000'],
  ];
  for (const [input, expected] of cases) assert.equal(formatTv(input), expected, String(input));
});

test('delivery log line as log_adhoc.c', () => {
  const delays = { beforeActive: 3, inActive: 0, setup: 0.004, transmission: 0.012, total: 3.02 };
  assert.equal(
    formatDeliveryLine({ queueId: '32829510521', recipient: 'user@primary.test', relay: 'mx1.primary.test[127.0.0.2]:25', delays, dsn: '2.0.0', status: 'sent', text: '250 2.0.0 Ok: queued as 33F28510531' }),
    '32829510521: to=<user@primary.test>, relay=mx1.primary.test[127.0.0.2]:25, delay=3, delays=3/0/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 33F28510531)',
  );
  assert.equal(
    formatDeliveryLine({ queueId: 'A1', recipient: 'a@b.test', origRecipient: 'alias@b.test', relay: 'none', connUse: 2, delays: { beforeActive: 0, inActive: 0, setup: 0, transmission: 0, total: 0 }, dsn: '4.4.1', status: 'deferred', text: 'connect to mx1.primary.test[127.0.0.2]:25: Connection refused' }),
    'A1: to=<a@b.test>, orig_to=<alias@b.test>, relay=none, conn_use=2, delay=0, delays=0/0/0/0, dsn=4.4.1, status=deferred (connect to mx1.primary.test[127.0.0.2]:25: Connection refused)',
  );
});

test('parseReply: multi-line replies joined as Postfix logs them', () => {
  const r = parseReply(['550-5.1.1 The email account that you tried to reach does not exist.', '550 5.1.1 https://support.example/NoSuchUser']);
  assert.deepEqual({ code: r.code, dsn: r.dsn, text: r.text }, {
    code: 550, dsn: '5.1.1',
    text: '550-5.1.1 The email account that you tried to reach does not exist. 550 5.1.1 https://support.example/NoSuchUser',
  });
  assert.equal(parseReply(['450 busy']).dsn, '4.0.0');
  assert.equal(parseReply(['451 5.1.1 wrong class']).dsn, '4.0.0');
  assert.equal(parseReply(['garbage']).code, 0);
});

test('encodeData: lines over smtp_line_length_limit are broken with CRLF SPACE, as Postfix does', () => {
  const long = 'a'.repeat(2500);
  const out = encodeData(long + '\r\nshort\r\n').toString('latin1');
  const lines = out.split('\r\n');
  assert.deepEqual(lines.map((l) => l.length), [998, 998, 506, 5, '.'.length, 0]);
  assert.equal(lines[1][0], ' ');
  assert.equal(lines.slice(0, 3).map((l, i) => (i ? l.slice(1) : l)).join(''), long);
  // With a dot-stuffed line start (the extra dot counts), and switched off with 0.
  assert.equal(encodeData('.' + 'b'.repeat(998)).toString('latin1'), '..' + 'b'.repeat(996) + '\r\n ' + 'bb\r\n.\r\n');
  assert.equal(encodeData('c'.repeat(1500), 0).toString('latin1'), 'c'.repeat(1500) + '\r\n.\r\n');
});

test('DotEncoder: the whole-line fast path gives the byte-by-byte result for any input, chunking and line limit', async () => {
  const { DotEncoder } = await import('../../src/smtp/index.js');
  // The rules, byte by byte (the oracle): CRLF, bare CR and bare LF end a line as CRLF; a dot
  // first on a line is doubled; a line reaching `limit` bytes is broken with CRLF SPACE.
  const reference = (input: Buffer, limit: number): Buffer => {
    const out: number[] = [];
    let atStart = true, afterCr = false, col = 0;
    for (const b of input) {
      if (b === 0x0a) { if (!afterCr) out.push(13, 10); afterCr = false; atStart = true; col = 0; continue; }
      if (b === 0x0d) { out.push(13, 10); afterCr = true; atStart = true; col = 0; continue; }
      if (limit > 0 && col >= limit) { out.push(13, 10, 0x20); col = 1; }
      if (atStart && b === 0x2e) { out.push(0x2e); col++; }
      out.push(b); col++; atStart = false; afterCr = false;
    }
    out.push(...(atStart ? [0x2e, 13, 10] : [13, 10, 0x2e, 13, 10]));
    return Buffer.from(out);
  };
  const alphabet = [0x0d, 0x0a, 0x2e, 0x61, 0x20];
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let t = 0; t < 5000; t++) {
    const input = Buffer.from(Array.from({ length: Math.floor(rnd() * 50) }, () => alphabet[Math.floor(rnd() * alphabet.length)]));
    const limit = [0, 1, 3, 998][Math.floor(rnd() * 4)];
    const cut = Math.floor(rnd() * (input.length + 1));
    const enc = new DotEncoder(limit);
    const got = Buffer.concat([enc.encode(input.subarray(0, cut)), enc.encode(input.subarray(cut)), enc.end()]);
    assert.deepEqual(got, reference(input, limit), `input ${JSON.stringify(input.toString('latin1'))}, limit ${limit}, cut at ${cut}`);
  }
});
