// Retry timing and lifetime, exactly as Postfix's qmgr_active.c computes them: after an attempt
// that leaves recipients to retry, the next attempt is now + clamp(age, minimal_backoff_time,
// maximal_backoff_time), where age = now - arrival. The delay therefore grows with the message's
// age ("exponential backoff") and is capped. Pure functions of their inputs (times in ms), so the
// rules are unit-tested with a controllable clock.

export interface BackoffParams {
  /** minimal_backoff_time, seconds. */
  minimalBackoffTime: number;
  /** maximal_backoff_time, seconds. */
  maximalBackoffTime: number;
}

/** The delay (ms) before the next attempt of a message that arrived at `arrival` and failed at `now`. */
export function backoffDelay(arrival: number, now: number, p: BackoffParams): number {
  const age = Math.max(0, now - arrival);
  const min = p.minimalBackoffTime * 1000;
  const max = Math.max(min, p.maximalBackoffTime * 1000);
  return Math.min(Math.max(age, min), max);
}

/** When the message is next due (ms since the epoch). */
export function nextAttemptTime(arrival: number, now: number, p: BackoffParams): number {
  return now + backoffDelay(arrival, now, p);
}

export interface LifetimeParams {
  /** maximal_queue_lifetime, seconds. */
  maximalQueueLifetime: number;
  /** bounce_queue_lifetime, seconds (null-sender mail). */
  bounceQueueLifetime: number;
}

/** The lifetime (seconds) that applies to a message: bounce_queue_lifetime for the null sender. */
export function lifetimeFor(sender: string, p: LifetimeParams): number {
  return sender === '' ? p.bounceQueueLifetime : p.maximalQueueLifetime;
}

/**
 * True when a message that still has recipients to retry must be returned: its age reached the
 * lifetime (0 = return after the first temporary failure, as Postfix), or it was forced to expire.
 */
export function isExpired(sender: string, arrival: number, now: number, p: LifetimeParams, forced = false): boolean {
  return forced || now - arrival >= lifetimeFor(sender, p) * 1000;
}

/** True when a delay warning is due (delay_warning_time > 0, not sent yet, message old enough). */
export function delayWarningDue(arrival: number, now: number, delayWarningTime: number, alreadySent: boolean): boolean {
  return delayWarningTime > 0 && !alreadySent && now - arrival >= delayWarningTime * 1000;
}
