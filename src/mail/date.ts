// Dates as mail carries them, written once: Received: headers, DSNs and the queue listing all
// print time the way Postfix's mail_date() and C's asctime() do, in the server's local time.

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number) => String(n).padStart(2, '0');

/**
 * RFC 5322 date as Postfix's mail_date(): `Tue, 24 Nov 2026 19:01:30 +0100`. Postfix appends the
 * zone's name in a comment (`(CET)`); Node does not know zone abbreviations, so only UTC, whose
 * name is certain, gets its comment: `... +0000 (UTC)`.
 */
export function mailDate(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const a = Math.abs(off);
  const zone = `${sign}${p2(Math.floor(a / 60))}${p2(a % 60)}${off === 0 ? ' (UTC)' : ''}`;
  return `${DAYS[d.getDay()]}, ${d.getDate()} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${zone}`;
}

/** C's asctime(localtime(t)): "Tue Nov  4 19:01:42 2026\n" (the queue listing's arrival time). */
export function asctime(ms: number): string {
  const d = new Date(ms);
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}\n`;
}
