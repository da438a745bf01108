// Shared mail vocabulary: replies and errors, addresses, envelopes.
export * from './reply.js';
export * from './address.js';
export * from './envelope.js';
