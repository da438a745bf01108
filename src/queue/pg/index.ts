// The PostgreSQL queue store (docs/cluster.md): its configuration file, its schema migrations, its
// writing side behind the queue's transactional interface, the lease functions and the queue
// manager's side on them (PgQueue), the synchronous-standby question for backstop check,
// connection slots across nodes, and the administrator's listing and operations on the whole
// cluster's queue.
export { parseQueueStore, parsePgConfig, loadPgConfig, type QueueStoreSpec, type PgConfig, type PgHost, type SslMode } from './config.js';
export { MIGRATIONS, LATEST_VERSION, migrate, type Migration, type MigrationReport } from './migrations.js';
export { PgQueueStore, type PgQueueStoreOptions } from './store.js';
export { CHUNK_BYTES, isOutage, pgStorageError } from './transaction.js';
export { claimDue, claimOne, renewLeases, recordStatus, finishAttempt, removeLeased, releaseLeases, flushDomainRows, type ClaimedMessage, type ClaimOptions, type AttemptResult, type DeliveryState } from './leases.js';
export { PgQueue, type PgQueueOptions } from './queue.js';
export { synchronousStandbyProblem } from './standby.js';
export { clientConfig, connectPrimary, hostList } from './connect.js';
export { PgSlots, slotKey, type ConnectionSlots, type PgSlotsOptions } from './slots.js';
export { listPgQueue, PG_QUEUES } from './showq.js';
export { applyPgAdmin, flushPg, pgFlusher, FLUSH_CHANNEL, type PgFlushStatus } from './admin.js';
