// Shared mail vocabulary: replies and errors, addresses, dates, IP forms, host names, envelopes.
export * from './reply.js';
export * from './address.js';
export * from './date.js';
export * from './ip.js';
export * from './hostname.js';
export * from './envelope.js';
export * from './tls-protocols.js';
