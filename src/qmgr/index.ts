// The queue manager: scheduling per destination with slow start and a dead list, Postfix's
// backoff and lifetimes, notices through the queue, fast flush and the destination watch.
export * from './types.js';
export * from './backoff.js';
export * from './destination.js';
export * from './watch.js';
export * from './qmgr.js';
export * from './notices.js';
export * from './control.js';
