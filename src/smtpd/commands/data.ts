// DATA (RFC 5321): in order as Postfix checks it — not after BDAT, recipients accepted (503 when
// no MAIL, 554 when every RCPT was refused), no argument, the data restrictions; then 354 and
// the message streams in through smtp-server's DATA mode (<CR><LF>.<CR><LF>, dot-unstuffing)
// into a MessageIn (message.ts), which ends it: commit and `250 Ok: queued as ID`, or a refusal.
// Trusts MessageIn for the queue hand-off and smtp-server for the terminator.

import { reply } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import { check, applyVerdict } from '../verdict.js';
import { MessageIn } from '../message.js';
import { R } from '../replies.js';

export async function data(c: BackstopConnection, arg: string): Promise<boolean> {
  const st = c.state;
  if (st.bdatState !== 'none') {
    await c.respond(reply(503, '5.5.1', 'Error: DATA after BDAT'));
    return false;
  }
  if (!st.rcpts.length) {
    await c.respond(st.inTransaction() ? R.noValidRcpts : R.needRcpt);
    return false;
  }
  if (arg) {
    await c.respond(reply(501, '5.5.4', 'Syntax: DATA'));
    return false;
  }
  const v = await check(c, 'data');
  if (!(await applyVerdict(c, v, 'DATA', st.lastRecipient()))) return false;
  const parser = c._parser;
  if (!parser) return false;
  const msg = await MessageIn.open(c);
  if (!msg) return false;

  const stream = parser.startDataMode();
  c._dataStream = stream;
  c.inData = true;
  c.dataBytes = 0;
  c._handlerPending = false;
  stream.on('data', (chunk: Buffer) => {
    c.dataBytes += chunk.length;
    if (chunk.includes(0x0a)) c.armDeadline();
    if (!msg.push(chunk)) {
      stream.pause();
      msg.content.once('drain', () => stream.resume());
    }
  });
  let gone = false;
  stream.on('error', () => {
    gone = true;
    void msg.abort();
  });
  stream.on('close', () => {
    if (!stream.readableEnded && !gone) void msg.abort();
  });
  stream.on('end', () => {
    c._handlerPending = true;
    void msg
      .finish('data')
      .then((ok) => c.count('data', ok))
      .finally(() => {
        c.inData = false;
        c._handlerPending = false;
        c._dataStream = false;
        st.resetTransaction();
        void c.afterCommand();
        if (c._parser) c._parser.continue();
      });
  });
  await c.respond(reply(354, '', 'End data with <CR><LF>.<CR><LF>'));
  // The client owes us the message now: the idle timeout counts again.
  c._handlerPending = false;
  return true;
}
