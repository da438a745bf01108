// The fast-flush contract: smtpd's ETRN and `postqueue -f/-s` ask the queue manager to deliver
// deferred mail now. Implemented by the queue manager.
export interface Flusher {
  /** Deliver deferred mail for one domain now; returns false when the domain is not eligible. */
  flushDomain(domain: string): Promise<boolean>;
  flushAll(): Promise<void>;
}
