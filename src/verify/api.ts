// The verify service's own interfaces: what it needs from the rest of the program (a Prober that
// sends probes through the delivery path, a DestinationUpSource that says when a primary answers
// again — the consumer declares them, so verify never imports smtp or qmgr) and what it offers
// beyond smtpd's Verifier contract (warm, inspect, destinationUp, stats).

import type { Logger } from '../log/index.js';
import type { Verifier, VerifyResult } from './types.js';
import type { VerifyStore } from './store.js';
import type { VerifyParams } from './params.js';
import type { VerifyRecord } from './record.js';

/** What the SMTP client's probe() returns. */
export interface ProbeResult {
  status: 'deliverable' | 'undeliverable' | 'deferred';
  dsn: string;
  text: string;
  relay: string;
}

/** Sends one probe: MAIL FROM:<sender> RCPT TO:<address>, no DATA. */
export type Prober = (address: string, sender: string) => Promise<ProbeResult>;

/** Where "the destination answers again" comes from (an EventEmitter fits). */
export interface DestinationUpSource {
  on(event: 'destinationUp', listener: (domain: string, nexthop?: string) => void): unknown;
  off?(event: 'destinationUp', listener: (domain: string, nexthop?: string) => void): unknown;
}

export interface VerifierOptions {
  /** The cache; default: memory only. The caller closes it. */
  store?: VerifyStore;
  prober: Prober;
  params?: Partial<VerifyParams>;
  /** Clock in milliseconds since the epoch (tests move it); default Date.now. */
  now?: () => number;
  log?: Logger;
  /** The destination a probe counts against (default: the address's domain). */
  destinationOf?: (address: string) => string;
  destinationEvents?: DestinationUpSource;
  /** Run the cleanup on a real timer as well as on queries (default true). */
  cleanupTimer?: boolean;
}

/** One cache entry in words, for `backstop verify show`. */
export interface EntryInfo {
  key: string;
  raw?: string;
  record?: VerifyRecord;
  /** Epoch seconds. */
  now: number;
  expiresAt?: number;
  refreshAt?: number;
  probeOutstanding: boolean;
  /** True when the entry is past its expiry (served as unknown). */
  expired: boolean;
}

export interface WarmResult {
  address: string;
  status: 'deliverable' | 'undeliverable' | 'deferred' | 'cached' | 'skipped' | 'error';
  text: string;
}

export interface VerifyService extends Verifier {
  check(address: string, kind?: 'recipient' | 'sender'): Promise<VerifyResult>;
  /** Probe now (unless the entry is fresh and !force) and wait for the result. */
  warm(address: string, opts?: { force?: boolean }): Promise<WarmResult>;
  /** Re-probe the DEFER entries of a destination that answers again; resolves to their number. */
  destinationUp(domain: string): Promise<number>;
  /** Remove expired entries now; logs Postfix's cleanup line. */
  runCleanup(): Promise<{ retained: number; dropped: number }>;
  inspect(address: string): Promise<EntryInfo>;
  /** The current probe sender ('' = null sender). */
  probeSender(): string;
  /** True when `address` is the probe sender (exempt from access restrictions; mail to it is discarded). */
  isProbeSender(address: string): boolean;
  readonly stats: { probes: number; peakPerDestination: number; pending: number };
  readonly params: Readonly<VerifyParams>;
  close(): Promise<void>;
}
