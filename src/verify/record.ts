// The verify cache record, exactly as Postfix's verify(8) stores it: key = the address (lower
// case, ':' written as '_' — Postfix's "FIX 200501 IPv6 patch did not neuter ':' in address
// literals"), value = `status:probed:updated:text`. Trusts nothing it parses: a malformed record,
// or one whose time stamps are both zero, is reported and treated as absent, as Postfix does.

/** Postfix's DEL_RCPT_STAT_* numbers. */
export const STAT_OK = 0;
export const STAT_DEFER = 1;
export const STAT_BOUNCE = 2;
export const STAT_TODO = 3;
export type RecordStatus = typeof STAT_OK | typeof STAT_DEFER | typeof STAT_BOUNCE | typeof STAT_TODO;

/** Assume a probe is lost when no answer came within this many seconds (Postfix's PROBE_TTL). */
export const PROBE_TTL = 1000;

/** The cleanup bookkeeping key (Postfix's dict_cache.c). */
export const CLEANUP_KEY = '_LAST_CACHE_CLEANUP_COMPLETED_';

/** Text of a TODO answer. */
export const IN_PROGRESS_TEXT = 'Address verification in progress';

export interface VerifyRecord {
  status: RecordStatus;
  /** Epoch seconds the outstanding probe was sent; 0 = none outstanding. */
  probed: number;
  /** Epoch seconds the last result arrived; 0 = no information. */
  updated: number;
  text: string;
}

/** The cache key for an address. */
export function cacheKey(address: string): string {
  const k = address.toLowerCase();
  return k.includes(':') ? k.replace(/:/g, '_') : k;
}

export function formatRecord(r: VerifyRecord): string {
  return `${r.status}:${r.probed}:${r.updated}:${r.text}`;
}

const DIGITS = /^[0-9]+$/;

/** Parse a stored value; undefined when it is malformed (the caller logs the warning). */
export function parseRecord(value: string): VerifyRecord | undefined {
  const a = value.indexOf(':');
  const b = a < 0 ? -1 : value.indexOf(':', a + 1);
  const c = b < 0 ? -1 : value.indexOf(':', b + 1);
  if (c < 0) return undefined;
  const s = value.slice(0, a);
  const p = value.slice(a + 1, b);
  const u = value.slice(b + 1, c);
  if (!DIGITS.test(s) || !DIGITS.test(p) || !DIGITS.test(u)) return undefined;
  const status = Number(s);
  const probed = Number(p);
  const updated = Number(u);
  if (status > STAT_TODO) return undefined;
  if (probed === 0 && updated === 0) return undefined;
  return { status: status as RecordStatus, probed, updated, text: value.slice(c + 1) };
}

/** Postfix's warning for a record that does not parse. */
export function badRecordWarning(value: string): string {
  return `bad address verify table entry: ${value.slice(0, 100)}`;
}

export interface ExpiryTimes {
  positiveExpire: number;
  negativeExpire: number;
  positiveRefresh: number;
  negativeRefresh: number;
}

/** Postfix's POSITIVE_ENTRY_EXPIRED || NEGATIVE_ENTRY_EXPIRED. */
export function isExpired(r: VerifyRecord, t: ExpiryTimes, now: number): boolean {
  return r.status === STAT_OK ? r.updated + t.positiveExpire < now : r.updated + t.negativeExpire < now;
}

/** Postfix's POSITIVE_REFRESH_NEEDED || NEGATIVE_REFRESH_NEEDED. */
export function needsRefresh(r: VerifyRecord, t: ExpiryTimes, now: number): boolean {
  return r.status === STAT_OK ? r.updated + t.positiveRefresh < now : r.updated + t.negativeRefresh < now;
}

/** True while a probe sent for this record may still answer. */
export function probeOutstanding(r: VerifyRecord, now: number): boolean {
  return now - r.probed <= PROBE_TTL;
}

/** When the record stops being served (epoch seconds). */
export function expiresAt(r: VerifyRecord, t: ExpiryTimes): number {
  if (r.updated === 0) return r.probed + PROBE_TTL;
  return r.updated + (r.status === STAT_OK ? t.positiveExpire : t.negativeExpire);
}

/** When the next refresh probe becomes due (epoch seconds). */
export function refreshAt(r: VerifyRecord, t: ExpiryTimes): number {
  return r.updated + (r.status === STAT_OK ? t.positiveRefresh : t.negativeRefresh);
}

/** Postfix's dict_cache cleanup validator: keep when parseable and (probe outstanding or not expired). */
export function keepAtCleanup(value: string, t: ExpiryTimes, now: number): boolean {
  const r = parseRecord(value);
  return r !== undefined && (now - r.probed < PROBE_TTL || !isExpired(r, t, now));
}
