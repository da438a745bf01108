// SMTP delivery client (Postfix's smtp(8)): next-hop routing with the loop rule, sessions with
// TLS/PIPELINING/SIZE/DSN/SMTPUTF8, connection reuse, per-recipient results, address probes,
// and Postfix's delivery log lines.
export * from './dnslookup.js';
export * from './nexthop.js';
export * from './body.js';
export * from './client.js';
export * from './pool.js';
export * from './deliver.js';
export * from './log.js';
