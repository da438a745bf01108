// The durable mail queue: queue files, the Queue (transactions, state updates, moves, recovery),
// the listing used by postqueue/mailq and the administrative operations used by postsuper.
// The only entry other modules import; the files' helpers for each other stay inside.
export * from './file.js';
export * from './records.js';
export { isValidQueueId, makeQueueId } from './id.js';
export * from './log.js';
export * from './dirsync.js';
export * from './lock.js';
export { readQueueHeadSync, readContent } from './read.js';
export type { WriteFn } from './disk.js';
export { QueueError, type QueueEntry, type QueueEvents } from './entry.js';
export type { RecipientResult } from './journal.js';
export { removeWriterFiles, type RecoveryReport } from './recovery.js';
export type { QueueTransaction, BeginOptions, CommitOptions } from './writer.js';
export { enqueue } from './enqueue.js';
export * from './queue.js';
export * from './showq.js';
export * from './admin.js';
export { QueueWriter, type QueueWriterOptions } from './spool.js';
export { RecyclePool, RECYCLE_FOLDER, RECYCLE_KEEP_BYTES, type TakenFile } from './recycle.js';
export type { SchedulingQueue, LoadedMessage } from './scheduling.js';
