// Bounce service (Postfix's bounce(8)): RFC 3464 delivery status notifications and delay
// warnings, and the rules for when a notice is due.
export * from './dsn.js';
