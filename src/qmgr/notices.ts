// The queue manager's side of the bounce service: turns a NoticeRequest into the bounce module's
// DSN (RFC 3464) and an envelope to queue. Double bounces (notices about null-sender mail) are sent
// from the double-bounce address, as Postfix's bounce(8) does, so that a double bounce that fails
// in turn is recognised and discarded — never a third notice, never a loop. Trusts buildDsn for the
// notice's content and the NOTIFY rules.

import { buildDsn } from '../bounce/index.js';
import type { Logger } from '../log/index.js';
import type { Envelope } from '../mail/index.js';
import type { Notice, NoticeBuilder, NoticeRequest } from './types.js';

export interface NoticeBuilderOptions {
  myhostname: string;
  /** $myorigin: domain of the double-bounce sender (default myhostname). */
  myorigin?: string;
  /** 2bounce_notice_recipient (default postmaster). */
  doubleBounceRecipient?: string;
  /** $mail_name for X-<name>-Queue-ID (default Backstop). */
  mailName?: string;
  /** bounce_size_limit (default 50000). */
  bounceSizeLimit?: number;
  /** delay_warning_time, seconds (for the delay template). */
  delayWarningTime?: number;
  /** maximal_queue_lifetime, seconds (for the delay template). */
  maximalQueueLifetime?: number;
  log?: Logger;
}

/** Postfix's double-bounce sender: "double-bounce@$myorigin". */
export function doubleBounceSender(myorigin: string): string {
  return `double-bounce@${myorigin}`;
}

export function createNoticeBuilder(o: NoticeBuilderOptions): NoticeBuilder {
  const origin = o.myorigin || o.myhostname;
  const dbSender = doubleBounceSender(origin).toLowerCase();
  return {
    async build(req: NoticeRequest): Promise<Notice | null> {
      const env = req.envelope;
      if (env.sender.toLowerCase() === dbSender) {
        // A double bounce that failed: Postfix discards it (no triple bounce).
        o.log?.info(`${req.queueId}: discarding undeliverable double bounce`);
        return null;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      const limit = o.bounceSizeLimit ?? 50000;
      for await (const c of req.content()) {
        chunks.push(c);
        size += c.length;
        // Past the limit only the headers are returned; keep reading only until the header ends.
        if (size > limit && Buffer.concat(chunks).includes('\r\n\r\n')) break;
      }
      const dsn = buildDsn({
        kind: req.kind,
        queueId: req.queueId,
        sender: env.sender,
        recipients: req.recipients.map((r) => ({
          address: r.address,
          orcpt: r.orcpt,
          notify: r.notify,
          status: r.dsn,
          text: r.text,
          remoteMta: r.remoteMta,
          diagnostic: r.diagnostic,
          ...(req.kind === 'failure' ? { action: 'failed' as const } : {}),
        })),
        original: Buffer.concat(chunks),
        arrivalTime: env.arrivalTime,
        myhostname: o.myhostname,
        ret: size > limit ? 'HDRS' : env.ret,
        envid: env.envid,
        doubleBounceRecipient: o.doubleBounceRecipient ?? 'postmaster',
        mailName: o.mailName ?? 'Backstop',
        bounceSizeLimit: limit,
        delayWarningHours: o.delayWarningTime !== undefined ? o.delayWarningTime / 3600 : undefined,
        maximalQueueLifetimeDays: o.maximalQueueLifetime !== undefined ? o.maximalQueueLifetime / 86400 : undefined,
      });
      if (!dsn) return null;
      const envelope: Envelope = {
        sender: dsn.doubleBounce ? doubleBounceSender(origin) : '',
        recipients: [{ address: dsn.recipient, notify: ['NEVER'] }],
        client: { name: 'localhost', address: '127.0.0.1', helo: o.myhostname, protocol: 'SMTP' },
        arrivalTime: Date.now(),
      };
      return { envelope, content: dsn.content };
    },
  };
}
