// Delivery status notifications (RFC 3464) as Postfix's bounce(8) writes them: a
// multipart/report with a human-readable part in Postfix's template wording, the
// message/delivery-status part (per-message and per-recipient fields), and the original message
// (full, per RET) or its headers. Also the rules for whether a notice is sent at all: never to
// the null sender (a failed bounce goes to 2bounce_notice_recipient as a double bounce), and DSN
// NOTIFY respected. It builds the notice only; the queue manager queues and sends it.
// Trusts its caller's recipient results; never talks to the network.

import { randomBytes } from 'node:crypto';
import { mailDate, type DsnNotify } from '../mail/index.js';

export type DsnKind = 'failure' | 'delay' | 'success';

export interface DsnRecipient {
  /** Final recipient address. */
  address: string;
  /** DSN ORCPT as given ("rfc822;addr"), if any. */
  orcpt?: string;
  /** NOTIFY from RCPT TO; undefined = Postfix's default (FAILURE,DELAY). */
  notify?: DsnNotify[];
  /** Enhanced status code, e.g. 5.1.1. */
  status: string;
  /** The delivery text (Postfix's reason), for the human-readable part. */
  text: string;
  /** Remote MTA host name, when a remote server was involved. */
  remoteMta?: string;
  /** The remote server's reply ("550 5.1.1 ..."); without it the reason becomes an X-Postfix diagnostic. */
  diagnostic?: string;
  /** Override of the Action field (default by kind: failed / delayed / delivered). */
  action?: 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';
}

export interface BuildDsnInput {
  kind: DsnKind;
  queueId: string;
  /** The original message's envelope sender ('' = null sender). */
  sender: string;
  recipients: DsnRecipient[];
  /** The original message content (CRLF line endings). */
  original: Buffer;
  /** Milliseconds since the epoch when the original arrived. */
  arrivalTime: number;
  /** $myhostname. */
  myhostname: string;
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  /** 2bounce_notice_recipient (default postmaster). */
  doubleBounceRecipient?: string;
  /** $mail_name for the X-<name>-Queue-ID fields (default Postfix, as the brief of the format). */
  mailName?: string;
  /** bounce_size_limit (default 50000): larger originals are returned as headers only. */
  bounceSizeLimit?: number;
  /** delay_warning_time in hours, for the delay template. */
  delayWarningHours?: number;
  /** maximal_queue_lifetime in days, for the delay template. */
  maximalQueueLifetimeDays?: number;
  /** Time of the notice (default now). */
  now?: Date;
}

export interface DsnMessage {
  /** Always the null sender: a notice must never cause another notice. */
  sender: '';
  recipient: string;
  content: Buffer;
  /** True when this is a double bounce (the original sender was the null sender). */
  doubleBounce: boolean;
}

/** Whether a recipient's NOTIFY asks for a notice of this kind (RFC 3461; Postfix's default FAILURE,DELAY). */
export function notifyWants(kind: DsnKind, notify: DsnNotify[] | undefined): boolean {
  if (!notify || notify.length === 0) return kind !== 'success';
  if (notify.includes('NEVER')) return false;
  return notify.includes(kind === 'failure' ? 'FAILURE' : kind === 'delay' ? 'DELAY' : 'SUCCESS');
}

/**
 * Postfix's rules for sending a notice: to the sender for the recipients whose NOTIFY asks for
 * it; a failure notice about null-sender mail goes to the postmaster (double bounce) — never to
 * '<>' — and delay/success notices about null-sender mail are not sent at all.
 */
export function shouldBounce(kind: DsnKind, sender: string, notify: DsnNotify[] | undefined): { send: boolean; to: 'sender' | 'postmaster' | null } {
  if (sender === '') return kind === 'failure' ? { send: true, to: 'postmaster' } : { send: false, to: null };
  return notifyWants(kind, notify) ? { send: true, to: 'sender' } : { send: false, to: null };
}

const SUBJECTS: Record<DsnKind, string> = {
  failure: 'Undelivered Mail Returned to Sender',
  delay: 'Delayed Mail (still being retried)',
  success: 'Successful Mail Delivery Report',
};

/** Folds "<addr>: text" the way bounce(8) prints reasons: 4-space continuation lines. */
function wrap(text: string, width = 76): string {
  const words = text.split(' ');
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur && (cur + ' ' + w).length > width) {
      lines.push(cur);
      cur = '    ' + w;
    } else {
      cur = cur ? cur + ' ' + w : w;
    }
  }
  if (cur) lines.push(cur);
  return lines.join('\n');
}

function humanText(input: BuildDsnInput, postmasterCopy: boolean): string {
  const head = `This is the mail system at host ${input.myhostname}.\n\n`;
  const help = 'For further assistance, please send mail to postmaster.\n\n' +
    'If you do so, please include this problem report. You can\n' +
    'delete your own text from the attached returned message.\n\n' +
    '                   The mail system\n';
  let body: string;
  switch (input.kind) {
    case 'failure':
      body = (postmasterCopy ? '' : "I'm sorry to have to inform you that your message could not\n" +
        "be delivered to one or more recipients. It's attached below.\n\n") + help;
      break;
    case 'delay':
      body = '####################################################################\n' +
        '# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n' +
        '####################################################################\n\n' +
        `Your message could not be delivered for more than ${input.delayWarningHours ?? 4} hour(s).\n` +
        `It will be retried until it is ${input.maximalQueueLifetimeDays ?? 5} day(s) old.\n\n` + help;
      break;
    case 'success':
      body = 'Your message was successfully delivered to the destination(s)\n' +
        'listed below. If the message was delivered to mailbox you will\n' +
        'receive no further notifications. Otherwise you may still receive\n' +
        'notifications of mail delivery errors from other systems.\n\n' +
        '                   The mail system\n';
      break;
  }
  const reasons = input.recipients.map((r) => wrap(`<${r.address}>: ${r.text}`)).join('\n\n');
  return head + body + '\n' + reasons + '\n';
}

function action(kind: DsnKind, r: DsnRecipient): string {
  return r.action ?? (kind === 'failure' ? 'failed' : kind === 'delay' ? 'delayed' : 'delivered');
}

/** Header lines only (up to the first empty line) of a CRLF message. */
export function headersOf(original: Buffer): Buffer {
  const end = original.indexOf('\r\n\r\n');
  if (end >= 0) return original.subarray(0, end + 2);
  return original;
}

function crlf(s: string): string {
  return s.replace(/\r?\n/g, '\r\n');
}

/** Strips CR/LF so that an address or text can never start a new header or field. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

/**
 * Builds the notice. Returns null when no notice is due (NOTIFY, null sender rules). Only the
 * recipients whose NOTIFY asks for this kind are reported; a double bounce reports them all.
 */
export function buildDsn(input: BuildDsnInput): DsnMessage | null {
  const now = input.now ?? new Date();
  // Null sender: only a failure is reported, to the postmaster; NOTIFY is per recipient below.
  if (input.sender === '' && input.kind !== 'failure') return null;
  const doubleBounce = input.sender === '';
  const rcpts = doubleBounce ? input.recipients : input.recipients.filter((r) => notifyWants(input.kind, r.notify));
  if (!rcpts.length) return null;
  const data = { ...input, recipients: rcpts };
  const recipient = doubleBounce ? (input.doubleBounceRecipient ?? 'postmaster') : input.sender;
  const mailName = input.mailName ?? 'Postfix';
  const stamp = `${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, '0')}${String(now.getUTCDate()).padStart(2, '0')}${String(now.getUTCHours()).padStart(2, '0')}${String(now.getUTCMinutes()).padStart(2, '0')}${String(now.getUTCSeconds()).padStart(2, '0')}`;
  const boundary = `${input.queueId}.${Math.floor(now.getTime() / 1000)}/${input.myhostname}`;
  const subject = doubleBounce ? 'Postmaster Copy: Undelivered Mail' : SUBJECTS[input.kind];

  const headers = [
    `Date: ${mailDate(now)}`,
    `From: MAILER-DAEMON@${input.myhostname} (Mail Delivery System)`,
    `Subject: ${subject}`,
    `To: ${recipient}`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="${boundary}"`,
    'Content-Transfer-Encoding: 8bit',
    `Message-Id: <${stamp}.${input.queueId}.${randomBytes(3).toString('hex')}@${input.myhostname}>`,
  ].join('\n');

  const perMessage = [
    `Reporting-MTA: dns; ${input.myhostname}`,
    `X-${mailName}-Queue-ID: ${input.queueId}`,
    `X-${mailName}-Sender: rfc822; ${oneLine(input.sender)}`,
    ...(input.envid ? [`Original-Envelope-Id: ${oneLine(input.envid)}`] : []),
    `Arrival-Date: ${mailDate(new Date(input.arrivalTime))}`,
  ].join('\n');

  const perRecipient = rcpts.map((r) => {
    const f = [`Final-Recipient: rfc822; ${oneLine(r.address)}`];
    if (r.orcpt) f.push(`Original-Recipient: ${oneLine(r.orcpt)}`);
    f.push(`Action: ${action(input.kind, r)}`);
    f.push(`Status: ${r.status}`);
    if (r.remoteMta) f.push(`Remote-MTA: dns; ${oneLine(r.remoteMta)}`);
    if (r.diagnostic) f.push(`Diagnostic-Code: smtp; ${oneLine(r.diagnostic)}`);
    else if (input.kind !== 'success') f.push(`Diagnostic-Code: X-${mailName}; ${oneLine(r.text)}`);
    if (input.kind === 'delay') {
      const until = new Date(input.arrivalTime + (input.maximalQueueLifetimeDays ?? 5) * 86400_000);
      f.push(`Will-Retry-Until: ${mailDate(until)}`);
    }
    return f.join('\n');
  });

  // The original: in full for a failure unless RET=HDRS or it exceeds bounce_size_limit;
  // delay and success notices carry headers only (as Postfix does).
  const limit = input.bounceSizeLimit ?? 50000;
  const full = input.kind === 'failure' && input.ret !== 'HDRS' && input.original.length <= limit;
  const originalPart = full ? input.original : headersOf(input.original);
  const originalHead = full
    ? `Content-Description: ${input.kind === 'failure' ? 'Undelivered Message' : 'Message'}\nContent-Type: message/rfc822\nContent-Transfer-Encoding: 8bit`
    : `Content-Description: ${input.kind === 'failure' ? 'Undelivered Message Headers' : 'Message Headers'}\nContent-Type: text/rfc822-headers\nContent-Transfer-Encoding: 8bit`;

  const before = crlf(
    headers + '\n\nThis is a MIME-encapsulated message.\n\n' +
    `--${boundary}\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n` +
    humanText(data, doubleBounce) + '\n' +
    `--${boundary}\nContent-Description: ${input.kind === 'delay' ? 'Delivery report' : 'Delivery report'}\nContent-Type: message/delivery-status\n\n` +
    perMessage + '\n\n' + perRecipient.join('\n\n') + '\n\n' +
    `--${boundary}\n${originalHead}\n\n`,
  );
  const orig = originalPart.length && !originalPart.subarray(-2).equals(Buffer.from('\r\n')) ? Buffer.concat([originalPart, Buffer.from('\r\n')]) : originalPart;
  const after = crlf(`\n--${boundary}--\n`);
  return { sender: '', recipient, content: Buffer.concat([Buffer.from(before, 'utf8'), orig, Buffer.from(after)]), doubleBounce };
}
