// The configuration check shared by `backstop check` (which prints it) and the master (which
// refuses to start or reload on an error): everything loaded, every table opened, the lint.
export { checkConfig, lintBackupMx } from './check.js';
export { validateAll } from './validate.js';
export { checkQueueDatabase } from './queuedb.js';
