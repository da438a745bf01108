// BDAT (RFC 3030 CHUNKING) as Postfix's bdat_cmd() does it. `BDAT size [LAST]`: the next `size`
// bytes are message content, read as bytes (binary-safe, never as commands — no smuggling), then
// answered: `250 2.0.0 Ok: N bytes`, and at LAST `250 2.0.0 Ok: N bytes queued as ID`. A
// malformed BDAT, or BDAT when smtpd_discard_ehlo_keywords removes CHUNKING, is answered with
// 521 and the session ends (the next input would be raw content). Every other refusal still
// reads and discards the chunk, to stay in step with a pipelining client; after a failed chunk
// the following ones are discarded ("551 5.0.0 Discarded N bytes after earlier error") until
// LAST or RSET. The first chunk counts as DATA for the data restrictions. BDAT may be pipelined.
// Trusts MessageIn (message.ts) for the queue hand-off; trusts nothing in the chunk.

import { reply, type Reply } from '../../mail/index.js';
import type { BackstopConnection } from '../connection.js';
import { check, applyVerdict } from '../verdict.js';
import { MessageIn } from '../message.js';
import { R } from '../replies.js';
import { printable } from '../nonsmtp.js';
import type { CommandStream } from '../stream.js';
import * as slog from '../log.js';

export async function bdat(c: BackstopConnection, arg: string): Promise<boolean | null> {
  const { settings: s, state: st } = c;
  const msg = st.bdatMessage as MessageIn | undefined;
  const qid = msg ? msg.id : 'NOQUEUE';
  if (s.discardEhloKeywords.has('CHUNKING')) return hangUp(c, reply(521, '5.5.1', 'Error: command not implemented'));
  const args = arg.split(/[ \t]+/).filter(Boolean);
  if (args.length < 1 || args.length > 2 || !/^\d+$/.test(args[0]) || (args.length === 2 && args[1].toUpperCase() !== 'LAST')) {
    c.log.warning(`${qid}: malformed BDAT command syntax from ${st.client}: ${printable(Buffer.from(`BDAT ${arg}`.trim(), 'utf8')).slice(0, 100)}`);
    return hangUp(c, reply(521, '5.5.4', 'Syntax: BDAT count [LAST]'));
  }
  const size = Number(args[0]);
  const last = args.length === 2;
  if (!Number.isSafeInteger(size)) return hangUp(c, reply(521, '5.5.4', 'Syntax: BDAT count [LAST]'));
  if (size === 0 && !last) {
    c.log.warning(`${qid}: null BDAT request from ${st.client}`);
    return skip(c, size, last, reply(551, '5.7.1', 'Null BDAT request'));
  }
  if (st.bdatState === 'error') return skip(c, size, last, reply(551, '5.0.0', `Discarded ${size} bytes after earlier error`));
  if (st.bdatState === 'none') {
    // With pipelining a client may send BDAT before it has seen the RCPT replies (RFC 3030 is
    // silent on command groups), so no valid recipient is a refusal, not a protocol error.
    if (!st.rcpts.length) return skip(c, size, last, st.inTransaction() ? R.noValidRcpts : R.needRcpt);
    const v = await check(c, 'data');
    if (v.action === 'reject') {
      for (const w of v.warnings ?? []) slog.logWarn(c.log, st.rejectCtx('DATA', st.lastRecipient()), w);
      slog.logReject(c.log, st.rejectCtx('DATA', st.lastRecipient()), v.reply as Reply);
      return skip(c, size, last, v.reply as Reply);
    }
    await applyVerdict(c, v, 'DATA', st.lastRecipient());
  }
  const limit = s.messageSizeLimit;
  if (limit > 0 && (msg?.size ?? 0) > limit - size) {
    c.log.warning(`${qid}: BDAT request from ${st.client} exceeds message size limit`);
    return skip(c, size, last, reply(552, '5.3.4', 'Chunk exceeds message size limit'));
  }
  let m = msg;
  if (!m) {
    m = await MessageIn.open(c);
    if (!m) {
      // The queue refused (already answered): the chunk is still the client's data.
      readThenAnswer(c, size, async () => {
        c.count('bdat', false);
        if (last) st.resetTransaction();
        else st.bdatState = 'error';
      });
      return null;
    }
    st.bdatMessage = m;
  }
  st.bdatState = 'ok';
  const taken = m;
  c.inBdat = true;
  readChunk(c, size, (b) => taken.push(b), async () => {
    c.inBdat = false;
    if (last) {
      taken.terminateLastLine();
      st.bdatMessage = undefined;
      const ok = await taken.finish('bdat');
      c.count('bdat', ok);
      st.resetTransaction();
      return;
    }
    if (taken.oversized || taken.sinkError) {
      // A failed middle chunk: answer now, drop the message, discard until LAST or RSET.
      st.bdatMessage = undefined;
      await taken.finish('bdat');
      c.count('bdat', false);
      st.resetTransaction();
      st.bdatState = 'error';
      return;
    }
    c.count('bdat', true);
    await c.respond(reply(250, '2.0.0', `Ok: ${size} bytes`));
  });
  return null;
}

/** 521: the next input would be raw content, so the session ends (Postfix's hang-up replies). */
async function hangUp(c: BackstopConnection, r: Reply): Promise<null> {
  c.ended = true;
  c.count('bdat', false);
  await c.respond(r);
  c.close();
  return null;
}

/** Postfix's skip_bdat(): read and drop the chunk, then refuse; LAST ends the transaction. */
function skip(c: BackstopConnection, size: number, last: boolean, r: Reply): null {
  readThenAnswer(c, size, async () => {
    c.count('bdat', false);
    await c.respond(r);
    if (last) c.state.resetTransaction();
    else c.state.bdatState = 'error';
  });
  return null;
}

function readThenAnswer(c: BackstopConnection, size: number, answer: () => Promise<void>): void {
  readChunk(c, size, () => undefined, answer);
}

function readChunk(c: BackstopConnection, size: number, onData: (b: Buffer) => void, onEnd: () => Promise<void>): void {
  const parser = c._parser as CommandStream | undefined;
  if (!parser) return;
  c.bdatBytes = 0;
  parser.readChunk(
    size,
    (b: Buffer) => {
      c.bdatBytes += b.length;
      c.armDeadline();
      onData(b);
    },
    async () => {
      await onEnd();
      await c.afterCommand();
    },
  );
}
