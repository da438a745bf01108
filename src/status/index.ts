// The system's status as the queue manager's process sees the queue, and its text form for
// `backstop status`. The only entry other modules import.
export * from './queueview.js';
export * from './format.js';
