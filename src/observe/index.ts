// Observability: this process's metrics and last-hour counts, the destinations as deliveries
// saw them, and the shapes of the reports workers hand the master. The only entry other modules import.
export * from './metrics.js';
export * from './window.js';
export * from './destinations.js';
export * from './forward.js';
export * from './report.js';
