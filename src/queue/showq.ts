// The queue listing behind `postqueue -p`, `mailq` and `postqueue -j` (Postfix's showq daemon and
// its showq_compat / showq_json formatters). Reads queue files directly and read-only, so it works
// whether or not the server runs; a file that moves or disappears while being read is skipped, as
// is one that cannot be parsed (the server moves those to corrupt/ itself).

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { asctime } from '../mail/index.js';
import { readQueueHeadSync } from './read.js';
import { isValidQueueId } from './id.js';
import type { QueueName } from './file.js';

export interface ShowqRecipient {
  address: string;
  /** Why delivery is delayed; empty when the recipient was not tried yet. */
  delayReason: string;
}

export interface ShowqMessage {
  queueName: QueueName;
  queueId: string;
  /** Arrival time, ms since the epoch. */
  arrivalTime: number;
  /** Content size (header + body), as Postfix's message_size. */
  messageSize: number;
  forcedExpire: boolean;
  /** Envelope sender; '' is the null sender. */
  sender: string;
  /** Recipients that are still to be delivered. */
  recipients: ShowqRecipient[];
  /**
   * The PostgreSQL store only (absent for the file store, whose output stays Postfix's): the node
   * holding the message's delivery lease and until when (ms since the epoch), or null when none does.
   */
  lease?: { node: string; until: number } | null;
}

/** The queues showq reports, in Postfix's order. */
export const SHOWQ_QUEUES: readonly QueueName[] = ['hold', 'active', 'deferred'];

/** Postfix's empty_address_recipient default, shown for the null sender. */
const EMPTY_ADDRESS = 'MAILER-DAEMON';

export function listQueue(queueDirectory: string, queues: readonly QueueName[] = SHOWQ_QUEUES): ShowqMessage[] {
  const out: ShowqMessage[] = [];
  for (const queueName of queues) {
    let names: string[];
    try {
      names = readdirSync(join(queueDirectory, queueName));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const batch: ShowqMessage[] = [];
    for (const queueId of names) {
      if (!isValidQueueId(queueId)) continue;
      try {
        const h = readQueueHeadSync(join(queueDirectory, queueName, queueId));
        const recipients: ShowqRecipient[] = [];
        h.envelope.recipients.forEach((r, i) => {
          const st = h.states[i];
          if (st.status === 'pending') recipients.push({ address: r.address, delayReason: st.reason ?? '' });
        });
        batch.push({
          queueName,
          queueId,
          arrivalTime: h.envelope.arrivalTime,
          messageSize: h.messageSize,
          forcedExpire: h.retry.forcedExpire,
          sender: h.envelope.sender,
          recipients,
        });
      } catch {
        // Moved, removed or unreadable since readdir(): not ours to report.
      }
    }
    batch.sort((a, b) => a.arrivalTime - b.arrivalTime || (a.queueId < b.queueId ? -1 : 1));
    out.push(...batch);
  }
  return out;
}

const padR = (s: string, w: number) => (s.length >= w ? s : s + ' '.repeat(w - s.length));
const padL = (s: string, w: number) => (s.length >= w ? s : ' '.repeat(w - s.length) + s);

/** A "(text)" line ending at column 78, as showq_compat.c prints a delay reason. */
const parenthesized = (text: string) => ' '.repeat(Math.max(0, 76 - text.length)) + `(${text})\n`;

/**
 * Sendmail-style listing exactly as Postfix's showq_compat.c prints it (short queue IDs):
 * headings "%-11s %7s %-20s %s", a sender line "%-11s %7ld %20.20s %s" with `*` (active), `!`
 * (hold) and `#` (forced expiry) after the ID, a "(reason)" line ending at column 78 whenever the
 * reason changes, recipient lines, and "-- N Kbytes in M Request(s)." or "Mail queue is empty".
 */
export function formatMailq(messages: readonly ShowqMessage[]): string {
  if (messages.length === 0) return 'Mail queue is empty\n';
  const line = (a: string, b: string, c: string, d: string) => `${padR(a, 11)} ${padL(b, 7)} ${padR(c, 20)} ${d}\n`;
  let out = line('-Queue ID-', '--Size--', '----Arrival Time----', '-Sender/Recipient-------');
  let total = 0;
  messages.forEach((m, n) => {
    if (n > 0) out += '\n';
    let idStatus = m.queueId;
    if (m.queueName === 'active') idStatus += '*';
    else if (m.queueName === 'hold') idStatus += '!';
    if (m.forcedExpire) idStatus += '#';
    out += `${padR(idStatus, 11)} ${padL(String(m.messageSize), 7)} ${asctime(m.arrivalTime).slice(0, 20)} ${m.sender || EMPTY_ADDRESS}\n`;
    // The lease holder (PostgreSQL store): a parenthesized line like a delay reason, which tools
    // that parse Postfix's listing already skip or take as a comment.
    if (m.lease) out += parenthesized(`leased by ${m.lease.node} until ${asctime(m.lease.until).slice(4, 19)}`);
    let saved = '';
    for (const r of m.recipients) {
      if (r.delayReason !== saved) {
        saved = r.delayReason;
        out += parenthesized(saved || 'reason unavailable');
      }
      out += line('', '', '', r.address);
    }
    total += m.messageSize;
  });
  out += `\n-- ${Math.floor(total / 1024)} Kbytes in ${messages.length} Request${messages.length === 1 ? '' : 's'}.\n`;
  return out;
}

/**
 * One JSON object per line, Postfix's showq_json.c field names and order; with the PostgreSQL
 * store two more at the end: lease_node (the holder's node name, or null) and lease_until (epoch
 * seconds, or null).
 */
export function formatJson(messages: readonly ShowqMessage[]): string {
  let out = '';
  for (const m of messages) {
    const q = (s: string) => JSON.stringify(s);
    const rcpts = m.recipients
      .map((r) => `{"address": ${q(r.address)}${r.delayReason ? `, "delay_reason": ${q(r.delayReason)}` : ''}}`)
      .join(', ');
    out +=
      `{"queue_name": ${q(m.queueName)}, "queue_id": ${q(m.queueId)}, "arrival_time": ${Math.floor(m.arrivalTime / 1000)}, ` +
      `"message_size": ${m.messageSize}, "forced_expire": ${m.forcedExpire}, "sender": ${q(m.sender || EMPTY_ADDRESS)}, ` +
      `"recipients": [${rcpts}]` +
      (m.lease === undefined ? '' : `, "lease_node": ${m.lease ? q(m.lease.node) : 'null'}, "lease_until": ${m.lease ? Math.floor(m.lease.until / 1000) : 'null'}`) +
      '}\n';
  }
  return out;
}
