// The dialogues the fidelity suite plays against Postfix 3.7 and Backstop: every command's
// error paths (syntax, sequence, limits, restrictions), pipelining, BDAT, ETRN, VRFY, AUTH and
// STARTTLS when not offered, over-long lines, non-SMTP clients (HTTP, header lines), bare <LF>.
// The configuration they assume is harness.ts's sharedParams(). Pure data.
import type { Dialogue, Step } from './harness.js';

const EHLO = 'EHLO client.test';
const MAIL = 'MAIL FROM:<sender@client.test>';
const RCPT = 'RCPT TO:<alice@example.test>';
const MSG = 'Subject: test\r\n\r\nhello\r\n.\r\n';

/** A message body of about n bytes, ending in the DATA terminator. */
function bigMessage(n: number): string {
  const line = 'x'.repeat(76) + '\r\n';
  return 'Subject: big\r\n\r\n' + line.repeat(Math.ceil(n / line.length)) + '.\r\n';
}

function repeat(s: string, n: number): string[] {
  return Array.from({ length: n }, () => s);
}

const chunk40 = 'Subject: bdat\r\n\r\n' + 'a'.repeat(21) + '\r\n'; // 40 bytes
const bdat = (payload: string, last = true): Step => ({ send: `BDAT ${Buffer.byteLength(payload)}${last ? ' LAST' : ''}\r\n${payload}`, replies: 1 });

export const DIALOGUES: Dialogue[] = [
  // --- greeting, HELO/EHLO, trivial commands
  { name: 'EHLO then QUIT', steps: [EHLO, 'QUIT'] },
  { name: 'HELO then QUIT', steps: ['HELO client.test', 'QUIT'] },
  { name: 'HELO and EHLO without a name', steps: ['HELO', 'EHLO', 'QUIT'] },
  { name: 'HELO rejected by check_helo_access', steps: ['HELO bad.helo.test', MAIL, 'RCPT TO:<alice@example.test>', 'QUIT'] },
  { name: 'unknown commands', steps: ['FOOBAR', 'HELP', 'EXPN root', 'TURN', 'QUIT'] },
  { name: 'empty and blank lines', steps: ['', '   ', 'QUIT'] },
  { name: 'NOOP and RSET with arguments', steps: [EHLO, 'NOOP hello', 'RSET now', 'RSET', 'QUIT now'] },
  { name: 'lower-case commands', steps: ['ehlo client.test', 'mail from:<sender@client.test>', 'rcpt to:<alice@example.test>', 'rset', 'quit'] },
  { name: 'NUL in a command', steps: [{ send: 'NOOP a\0b\r\n' }, 'QUIT'] },
  { name: 'invalid UTF-8 in a command', steps: [EHLO, { send: Buffer.from('MAIL FROM:<s\xff@client.test>\r\n', 'latin1') }, 'QUIT'] },
  { name: 'EHLO twice resets the transaction', steps: [EHLO, MAIL, EHLO, RCPT, 'QUIT'] },

  // --- MAIL
  { name: 'MAIL before HELO', steps: [MAIL, RCPT, 'QUIT'] },
  { name: 'MAIL syntax errors', steps: [EHLO, 'MAIL', 'MAIL FROM', 'MAIL FROM:', 'MAIL TO:<a@b.test>', 'MAIL FROM:<sender@client.test', 'MAIL FROM:<a b@client.test>', 'MAIL FROM:<<a@b.test>>', 'QUIT'] },
  { name: 'MAIL forms accepted', steps: [EHLO, 'MAIL FROM: <sender@client.test>', 'RSET', 'MAIL FROM:sender@client.test', 'RSET', 'MAIL FROM:<>', 'RSET', 'MAIL FROM:<@route.test:sender@client.test>', 'RSET', 'MAIL FROM:<"quoted local"@client.test>', 'QUIT'] },
  { name: 'MAIL parameters', steps: [EHLO, 'MAIL FROM:<s@client.test> FOO=bar', 'MAIL FROM:<s@client.test> SIZE=abc', 'MAIL FROM:<s@client.test> BODY=9BIT', 'MAIL FROM:<s@client.test> RET=XX', 'MAIL FROM:<s@client.test> ENVID=a ENVID=b', 'MAIL FROM:<s@client.test> AUTH=<>', 'MAIL FROM:<s@client.test> SMTPUTF8 BODY=8BITMIME RET=HDRS ENVID=x', 'QUIT'] },
  { name: 'MAIL parameters after HELO', steps: ['HELO client.test', 'MAIL FROM:<s@client.test> SIZE=100', 'QUIT'] },
  { name: 'nested MAIL', steps: [EHLO, MAIL, MAIL, 'QUIT'] },
  { name: 'MAIL SIZE over message_size_limit', steps: [EHLO, 'MAIL FROM:<sender@client.test> SIZE=30000', 'MAIL FROM:<sender@client.test> SIZE=20000', 'QUIT'] },
  { name: 'non-ASCII sender without SMTPUTF8', steps: [EHLO, 'MAIL FROM:<s\u00fc@client.test>', 'MAIL FROM:<s\u00fc@client.test> SMTPUTF8', 'RCPT TO:<alice@example.test>', 'QUIT'] },
  { name: 'sender rejected and warned by check_sender_access', steps: [EHLO, 'MAIL FROM:<spammer@bad.test>', 'RCPT TO:<alice@example.test>', 'RSET', 'MAIL FROM:<warn@bad.test>', 'RCPT TO:<alice@example.test>', 'QUIT'] },

  // --- RCPT
  { name: 'RCPT before MAIL', steps: [EHLO, RCPT, 'QUIT'] },
  { name: 'RCPT syntax errors', steps: [EHLO, MAIL, 'RCPT', 'RCPT TO', 'RCPT TO:', 'RCPT TO:<>', 'RCPT FROM:<alice@example.test>', 'RCPT TO:<alice@example.test', 'QUIT'] },
  { name: 'RCPT parameters', steps: [EHLO, MAIL, 'RCPT TO:<alice@example.test> NOTIFY=BOGUS', 'RCPT TO:<alice@example.test> ORCPT=bad', 'RCPT TO:<alice@example.test> XYZ=1', 'RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.test', 'QUIT'] },
  { name: 'RCPT relay denied, unknown user, access table', steps: [EHLO, MAIL, 'RCPT TO:<x@other.test>', 'RCPT TO:<nobody@example.test>', 'RCPT TO:<temp@example.test>', 'RCPT TO:<nope@example.test>', 'RCPT TO:<alice@example.test.>', 'QUIT'] },
  { name: 'RCPT TO:<postmaster>', steps: [EHLO, MAIL, 'RCPT TO:<postmaster>', 'QUIT'] },
  { name: 'smtpd_recipient_limit', steps: [EHLO, MAIL, 'RCPT TO:<alice@example.test>', 'RCPT TO:<bob@example.test>', 'RCPT TO:<carol@example.test>', 'RCPT TO:<dave@example.test>', 'RCPT TO:<erin@example.test>', 'RCPT TO:<frank@example.test>', 'QUIT'] },
  { name: 'client rejected by check_client_access (delayed to RCPT)', from: '127.0.0.77', steps: [EHLO, MAIL, RCPT, 'ETRN example.test', 'VRFY alice@example.test', 'QUIT'] },

  // --- DATA
  { name: 'DATA before MAIL', steps: [EHLO, 'DATA', 'QUIT'] },
  { name: 'DATA after RCPT refused', steps: [EHLO, MAIL, 'RCPT TO:<x@other.test>', 'DATA', 'QUIT'] },
  { name: 'DATA with an argument', steps: [EHLO, MAIL, RCPT, 'DATA now', 'QUIT'] },
  { name: 'DATA accepted', steps: [EHLO, MAIL, RCPT, 'DATA', { send: MSG }, 'QUIT'] },
  { name: 'two messages in one session', steps: [EHLO, MAIL, RCPT, 'DATA', { send: MSG }, MAIL, 'RCPT TO:<bob@example.test>', 'DATA', { send: MSG }, 'QUIT'] },
  { name: 'DATA over message_size_limit', steps: [EHLO, MAIL, RCPT, 'DATA', { send: bigMessage(25000), replies: 1 }, 'QUIT'] },
  { name: 'DATA with bare LF lines', steps: [EHLO, MAIL, RCPT, 'DATA', { send: 'Subject: lf\n\nline one\nline two\r\n.\r\n', replies: 1 }, 'QUIT'] },
  { name: 'DATA with a bare LF dot line', steps: [EHLO, MAIL, RCPT, 'DATA', { send: 'Subject: lf\r\n\r\nbefore\n.\nRSET\r\nafter\r\n.\r\n', replies: 1 }, 'QUIT'] },
  { name: 'command with a bare LF', steps: [{ send: 'EHLO client.test\n' }, { send: 'NOOP\n' }, 'QUIT'] },

  // --- pipelining
  { name: 'proper pipelining after EHLO', steps: [EHLO, { send: `${MAIL}\r\n${RCPT}\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n`, replies: 4 }, { send: MSG }, 'QUIT'] },
  { name: 'pipelining with a refused RCPT', steps: [EHLO, { send: `${MAIL}\r\nRCPT TO:<x@other.test>\r\nDATA\r\n`, replies: 3 }, { send: MSG, replies: 3 }, 'QUIT'] },
  { name: 'command after EHLO in the same write', steps: [{ send: `${EHLO}\r\n${MAIL}\r\n`, replies: 2 }, RCPT, 'QUIT'] },
  { name: 'pipelining after HELO', steps: ['HELO client.test', { send: `${MAIL}\r\n${RCPT}\r\n`, replies: 2 }, 'QUIT'] },
  { name: 'message text pipelined after DATA', steps: [EHLO, MAIL, RCPT, { send: `DATA\r\n${MSG}`, replies: 2 }, 'QUIT'] },
  { name: 'NOOP and VRFY followed by more', steps: [EHLO, { send: 'NOOP\r\nNOOP\r\n', replies: 2 }, 'QUIT'] },
  { name: 'RSET and ETRN pipelined', steps: [EHLO, { send: 'RSET\r\nRSET\r\nETRN example.test\r\nNOOP\r\n', replies: 4 }, 'QUIT'] },

  // --- limits
  { name: 'hard error limit', steps: [...repeat('FOOBAR', 21), 'QUIT'] },
  { name: 'junk command limit', steps: [EHLO, ...repeat('NOOP', 125), 'QUIT'] },
  { name: 'over-long command line', steps: [EHLO, 'MAIL FROM:<' + 'a'.repeat(3000) + '@client.test>', 'NOOP', 'QUIT'] },
  { name: 'over-long unknown command', steps: ['X'.repeat(5000), 'QUIT'] },

  // --- ETRN, VRFY, AUTH, STARTTLS
  { name: 'ETRN before HELO', steps: ['ETRN example.test', 'QUIT'] },
  { name: 'ETRN errors', steps: [EHLO, 'ETRN', 'ETRN a b', 'ETRN bad..domain', 'ETRN other.test', 'ETRN @example.test', 'ETRN #example.test', 'QUIT'] },
  { name: 'ETRN in a transaction', steps: [EHLO, MAIL, 'ETRN example.test', 'QUIT'] },
  { name: 'VRFY', steps: [EHLO, 'VRFY', 'VRFY alice@example.test', 'VRFY <alice@example.test>', 'VRFY nobody@example.test', 'VRFY x@other.test', 'VRFY nope@example.test', 'QUIT'] },
  { name: 'AUTH when not offered', steps: [EHLO, 'AUTH PLAIN AGFsaWNlAHNlY3JldA==', 'AUTH', 'QUIT'] },
  { name: 'STARTTLS when not offered', steps: [EHLO, 'STARTTLS', 'STARTTLS now', 'QUIT'] },
  { name: 'XCLIENT and XFORWARD from a client not allowed', steps: [EHLO, 'XCLIENT NAME=spoof.test', 'XFORWARD NAME=spoof.test', 'QUIT'] },

  // --- non-SMTP clients
  { name: 'HTTP GET', steps: [{ send: 'GET / HTTP/1.0\r\n' }] },
  { name: 'HTTP POST after EHLO', steps: [EHLO, { send: 'POST /form HTTP/1.1\r\n' }] },
  { name: 'HTTP CONNECT proxy probe', steps: [{ send: 'CONNECT 127.0.0.1:25 HTTP/1.0\r\n' }] },
  { name: 'header line sent as a command', steps: [EHLO, { send: 'Subject: hello\r\n' }] },
  { name: 'From: header sent as a command', steps: [EHLO, MAIL, RCPT, { send: 'From: someone@client.test\r\n' }] },
  { name: 'command not starting with a capital letter', steps: [{ send: '123 hello\r\n' }] },
  { name: 'TLS hello bytes on the plain port', steps: [{ send: Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x0d, 0x0a]) }] },

  // --- BDAT (RFC 3030)
  { name: 'BDAT LAST accepted', steps: [EHLO, MAIL, RCPT, bdat(chunk40), 'QUIT'] },
  { name: 'BDAT in chunks', steps: [EHLO, MAIL, RCPT, bdat('Subject: chunks\r\n\r\n', false), bdat('part one\r\n', false), bdat('part two\r\n'), 'QUIT'] },
  { name: 'BDAT pipelined with MAIL and RCPT', steps: [EHLO, { send: `${MAIL}\r\n${RCPT}\r\nBDAT 40 LAST\r\n${chunk40}QUIT\r\n`, replies: 4 }] },
  { name: 'BDAT 0 LAST after a chunk', steps: [EHLO, MAIL, RCPT, bdat(chunk40, false), { send: 'BDAT 0 LAST\r\n' }, 'QUIT'] },
  { name: 'BDAT chunk holding commands is data', steps: [EHLO, MAIL, RCPT, bdat('Subject: smuggle\r\n\r\nRSET\r\nMAIL FROM:<evil@client.test>\r\n.\r\nQUIT\r\n'), 'NOOP', 'QUIT'] },
  { name: 'BDAT binary chunk and bare CR/LF', steps: [EHLO, MAIL, RCPT, { send: Buffer.concat([Buffer.from('BDAT 12 LAST\r\n'), Buffer.from([0x53, 0x3a, 0x20, 0x78, 0x0a, 0x0a, 0x00, 0xff, 0x0d, 0x61, 0x0a, 0x62])]), replies: 1 }, 'QUIT'] },
  { name: 'BDAT without MAIL', steps: [EHLO, { send: `BDAT 40 LAST\r\n${chunk40}`, replies: 1 }, 'QUIT'] },
  { name: 'BDAT without valid recipients', steps: [EHLO, MAIL, 'RCPT TO:<x@other.test>', { send: `BDAT 40 LAST\r\n${chunk40}`, replies: 1 }, 'QUIT'] },
  { name: 'BDAT bad syntax', steps: [EHLO, MAIL, RCPT, { send: 'BDAT\r\n' }, 'QUIT'] },
  { name: 'BDAT with a bad count', steps: [EHLO, MAIL, RCPT, { send: 'BDAT 12x LAST\r\n' }, 'QUIT'] },
  { name: 'BDAT with a bad keyword', steps: [EHLO, MAIL, RCPT, { send: 'BDAT 4 FIRST\r\nabcd' }, 'QUIT'] },
  { name: 'null BDAT', steps: [EHLO, MAIL, RCPT, { send: 'BDAT 0\r\n' }, bdat(chunk40), 'QUIT'] },
  { name: 'BDAT chunk over message_size_limit', steps: [EHLO, MAIL, RCPT, bdat('x'.repeat(25000), false), bdat(chunk40), 'QUIT'] },
  { name: 'BDAT chunks adding up over message_size_limit', steps: [EHLO, MAIL, RCPT, bdat('Subject: s\r\n\r\n' + 'y\r\n'.repeat(4000), false), bdat('z\r\n'.repeat(3500)), 'QUIT'] },
  { name: 'DATA after BDAT', steps: [EHLO, MAIL, RCPT, bdat(chunk40, false), 'DATA', bdat('end\r\n'), 'QUIT'] },
  { name: 'BDAT after HELO', steps: ['HELO client.test', MAIL, RCPT, bdat(chunk40), 'QUIT'] },
  { name: 'MAIL during BDAT', steps: [EHLO, MAIL, RCPT, bdat(chunk40, false), MAIL, 'RCPT TO:<bob@example.test>', 'RSET', MAIL, RCPT, bdat(chunk40), 'QUIT'] },
  { name: 'BDAT chunk cut by the client', steps: [EHLO, MAIL, RCPT, { send: 'BDAT 100 LAST\r\nshort', replies: 0 }] },
];
