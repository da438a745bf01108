// The master's HTTP listener: metrics, the dashboard and its API. The only entry other modules import.
export * from './listen.js';
export * from './auth.js';
export * from './status.js';
export * from './server.js';
