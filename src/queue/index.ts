// The durable mail queue: queue files, the Queue (accept, state updates, moves, recovery), the
// listing used by postqueue/mailq and the administrative operations used by postsuper.
export * from './file.js';
export * from './records.js';
export * from './id.js';
export * from './log.js';
export * from './dirsync.js';
export * from './lock.js';
export * from './read.js';
export * from './queue.js';
export * from './showq.js';
export * from './admin.js';
