// Address verification (Postfix's verify(8)): the service smtpd asks, the cache record and its
// rules, the stores (memory, LMDB, Redis), the probe sender. See docs/verify.md.
export type { Verifier, VerifyResult, VerifyStatus } from './types.js';
export { createVerifier } from './service.js';
export type { VerifyService, VerifierOptions, Prober, ProbeResult, DestinationUpSource, EntryInfo, WarmResult } from './api.js';
export { DEFAULT_VERIFY_PARAMS, verifyParamsFrom, type VerifyParams } from './params.js';
export { MemoryStore, LmdbStore, type VerifyStore } from './store.js';
export { openVerifyStore, checkVerifyStoreFile, type OpenStoreOptions } from './open.js';
export { RedisStore, parseRedisConfig, type RedisConfig } from './redis.js';
export { makeProbeSender, isProbeSender, type ProbeSenderParams } from './sender.js';
export { DestinationLimiter } from './limiter.js';
export * from './record.js';
export { warmAddresses, tableAddresses, syncOnce, startVerifySync, formatTotals, isMailboxKey, emptyTotals, type WarmTotals, type WarmOptions, type SyncOptions } from './sync.js';
