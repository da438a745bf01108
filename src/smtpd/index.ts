// smtpd: the SMTP server (protocol, limits, STARTTLS, AUTH via Dovecot) in front of the queue;
// the restriction engine lives in check/.
export { startSmtpd, listenHosts, type Smtpd, type SmtpdOptions } from './server.js';
export type { MessageSink, MessageTransaction, ClientNameLookup, Flusher, ConnectionCounter, ConnectionLimits, AnvilVerdict } from './types.js';
export { Anvil } from './anvil.js';
export { readSettings, type SmtpdSettings } from './settings.js';
export { DovecotAuthClient, type DovecotMech, type AuthStep } from './sasl/dovecot.js';
