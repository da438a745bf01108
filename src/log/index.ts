// Logging: Postfix-style maillog lines. One typed function per line format lives with the module
// that emits it (e.g. smtpd's NOQUEUE reject line), built on Logger.
export * from './maillog.js';
