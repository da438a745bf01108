// smtpd's side of the restriction engine: ask it at a stage and answer its verdict. An engine
// failure (or a reject without a reply) becomes a 451 — temporary, never a relay and never a
// permanent reject. A reject is logged as Postfix's `NOQUEUE: reject:` line and answered; an
// accept may carry access(5) WARN texts and HOLD / DISCARD, of which the first in a transaction
// decides. Trusts the engine's verdicts.

import { reply, type Reply } from '../mail/index.js';
import type { SessionInfo, Stage, Verdict } from './check/types.js';
import type { BackstopConnection } from './connection.js';
import * as slog from './log.js';
import { countReject } from '../observe/index.js';

/** The engine's verdict at `stage` for this session (`extra` overrides what the session says). */
export async function check(c: BackstopConnection, stage: Stage, extra: Partial<SessionInfo> = {}): Promise<Verdict> {
  try {
    const v = await c.ctx.engine.check(c.state.info(stage, extra));
    if (v.action === 'reject' && !v.reply) {
      return { action: 'reject', reply: reply(451, '4.3.5', 'Server configuration error') };
    }
    return v;
  } catch (err) {
    // An engine failure is temporary, never a relay and never a permanent reject.
    c.log.warning(`restriction engine failed at ${stage} for ${c.state.client}: ${(err as Error).message}`);
    return { action: 'reject', reply: reply(451, '4.3.0', 'Error: server configuration problem') };
  }
}

/** Answer a reject verdict and log it; returns true when the stage may go on. */
export async function applyVerdict(c: BackstopConnection, v: Verdict, stage: string, recipient?: string): Promise<boolean> {
  const st = c.state;
  for (const w of v.warnings ?? []) slog.logWarn(c.log, st.rejectCtx(stage, recipient), w);
  if (v.action === 'accept') {
    // access(5) HOLD / DISCARD: the first one in a transaction decides, as in Postfix.
    if (v.discard !== undefined && st.discardText === undefined) {
      st.discardText = v.discard;
      slog.logAction(c.log, 'discard', st.rejectCtx(stage, recipient), v.discard);
    } else if (v.hold !== undefined && st.holdText === undefined && st.discardText === undefined) {
      st.holdText = v.hold;
      slog.logAction(c.log, 'hold', st.rejectCtx(stage, recipient), v.hold);
    }
    return true;
  }
  const r = v.reply as Reply;
  countReject(r.code, v.restriction);
  slog.logReject(c.log, st.rejectCtx(stage, recipient), r);
  await c.respond(r);
  return false;
}
