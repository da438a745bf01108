// The queue's maillog lines, one typed function per format, as Postfix's smtpd, cleanup and qmgr
// write them. Trusts its callers for the values; only formats.

import type { Logger } from '../log/index.js';

/** smtpd: `ID: client=name[addr]` — the first line of a queued message. */
export function logClient(log: Logger, id: string, clientName: string, clientAddress: string): void {
  log.info(`${id}: client=${clientName}[${clientAddress}]`);
}

/** cleanup: `ID: message-id=<...>` — the Message-ID header value as received; `<>` when none, as Postfix logs it. */
export function logMessageId(log: Logger, id: string, messageId: string | undefined): void {
  log.info(`${id}: message-id=${messageId || '<>'}`);
}

/** qmgr: `ID: from=<sender>, size=N, nrcpt=N (queue active)` — the file enters the active queue. */
export function logQueueActive(log: Logger, id: string, sender: string, size: number, nrcpt: number): void {
  log.info(`${id}: from=<${sender}>, size=${size}, nrcpt=${nrcpt} (queue active)`);
}

/** qmgr/postsuper: `ID: removed` — the file leaves the queue. */
export function logRemoved(log: Logger, id: string): void {
  log.info(`${id}: removed`);
}

/** `warning: ID: queue file is corrupt (reason); moved to corrupt/` */
export function logCorrupt(log: Logger, queue: string, name: string, reason: string): void {
  log.warning(`${queue}/${name}: ${reason}; moved to corrupt/${name}`);
}

/** `warning: incoming/NAME: removing queue file that was never committed` */
export function logIncomingRemoved(log: Logger, name: string): void {
  log.warning(`incoming/${name}: removing queue file that was never committed`);
}

/** `warning: queue/ID: dropped incomplete state update at offset N` */
export function logTornUpdate(log: Logger, queue: string, id: string, offset: number): void {
  log.warning(`${queue}/${id}: dropped incomplete state update at offset ${offset}`);
}
