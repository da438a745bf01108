// SMTP delivery client (Postfix's smtp(8)): next-hop routing with the loop rule, sessions with
// TLS/PIPELINING/SIZE/DSN/SMTPUTF8, connection reuse, per-recipient results, address probes,
// and Postfix's delivery log lines. The only entry other modules import.
export * from './dnslookup.js';
export * from './nexthop.js';
export * from './body.js';
export * from './options.js';
export { parseReply, type ServerReply } from './replies.js';
export { SessionError, hostDesc, type FailureKind } from './conn.js';
export type { Features } from './handshake.js';
export type { TxRecipient, Transaction, RecipientOutcome } from './transaction.js';
export * from './client.js';
export * from './pool.js';
export * from './deliver.js';
export * from './log.js';
export { openSecured, resolveSessionTls, type OutboundTls, type StsSource, type StsVerdict } from './tls-session.js';
export { lookupTlsPolicy, parsePolicyEntry, protocolRange, type TlsPolicy } from './tls-policy.js';
export { MtaStsCache, stsRecordId, type MtaStsOptions, type StsDns } from './mta-sts.js';
export { xclientCommand, xforwardCommands, type OriginalClient } from './xforward.js';
