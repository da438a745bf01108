// The queue manager: scheduling per destination with slow start and a dead list, Postfix's
// backoff and lifetimes, notices through the queue, fast flush and the destination watch.
// The only entry other modules import; the stages' shared core (core.ts) stays inside.
export * from './types.js';
export * from './params.js';
export * from './backoff.js';
export * from './destination.js';
export * from './watch.js';
export * from './qmgr.js';
export * from './notices.js';
export * from './control.js';
export { domainListMatch } from './flush.js';
export { watchDelay, firstToAnswer, WATCH_MAX_INTERVAL_MS } from './deferred.js';
export type { DeliverFn, DeliveryRoute, ProbeFn } from './core.js';
