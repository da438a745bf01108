// The control socket between the administrator's commands and the running master.
export * from './protocol.js';
export { startControlServer } from './server.js';
export { controlRequest } from './client.js';
