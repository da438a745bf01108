// Delivery of one message (or one address probe) to its next hops, as smtp(8) does per request:
// group recipients by next hop, resolve the addresses (loop rule included), then try the
// addresses in order — a connection failure or a temporary failure at a non-final host moves the
// recipients on to the next address, up to smtp_mx_address_limit addresses and
// smtp_mx_session_limit sessions. Returns one result per recipient and logs Postfix's line for
// each. Trusts the queue manager to own retries and bounces; this module only reports.

import { maillog, type Logger } from '../log/index.js';
import type { EnvelopeRecipient } from '../mail/index.js';
import { SmtpSession } from './client.js';
import { SessionError } from './conn.js';
import type { SessionOptions } from './options.js';
import type { RecipientOutcome, Transaction } from './transaction.js';
import { logConnectFailure, logDelivery, type Delays, type DeliveryStatus } from './log.js';
import { chooseNextHop, resolveNextHop, NextHopSyntaxError, type MxAddress, type NextHop, type RouteFailure, type RoutingOptions } from './nexthop.js';
import type { ConnectionCache } from './pool.js';
import { openSecured, type OutboundTls } from './tls-session.js';
import type { OriginalClient } from './xforward.js';

export interface OutboundMessage {
  queueId: string;
  /** Envelope sender; '' is the null sender. */
  sender: string;
  recipients: EnvelopeRecipient[];
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  smtputf8?: boolean;
  bodyType?: '7BIT' | '8BITMIME';
  /** The content, chunk by chunk (CRLF line endings expected; anything else is normalized). */
  body: () => AsyncIterable<Buffer | string>;
  /** The queue file holding the content, for a delivery agent thread that reads it itself. */
  path?: string;
  /** Content size in bytes (SIZE=). */
  size: number;
  /** The client that gave us the message (for XFORWARD/XCLIENT). */
  client?: OriginalClient;
  /** When the message arrived (ms since the epoch); default: now. */
  arrivalTime?: number;
  /** When the queue manager made it active (ms since the epoch); default: the call time. */
  activeTime?: number;
  /**
   * The next hop of every recipient, as the queue manager chose it at activation (Postfix's
   * delivery request carries it to smtp(8)); absent: chosen here, recipient by recipient.
   */
  nexthop?: NextHop;
}

export interface DeliveryOptions extends RoutingOptions {
  session: SessionOptions;
  /** Connection cache shared between deliveries; none: a session per delivery. */
  cache?: ConnectionCache;
  /** smtp_mx_address_limit (default 5; 0 = no limit). */
  mxAddressLimit?: number;
  /** smtp_mx_session_limit (default 2; 0 = no limit). */
  mxSessionLimit?: number;
  /** Logger for delivery lines; default maillog.logger('smtp'). */
  logger?: Logger;
  /** delay_logging_resolution_limit (default 2). */
  delayResolution?: number;
  /** Policy maps, DANE, MTA-STS (tls-session.ts); absent: session.tlsLevel alone. */
  tls?: OutboundTls;
  /** minimal_backoff_time in seconds: a message older than this may retry TLS failures in plain text at `may`. */
  minimalBackoffSec?: number;
  /**
   * Connection slots shared with other nodes (the PostgreSQL queue store: src/queue/pg/slots.ts):
   * each new connection to a next hop holds one until it closes, so that all nodes together
   * keep at most `slotLimit` connections to it, cached idle ones included.
   */
  slots?: ConnectionSlots;
  /** The limit per next hop for `slots` (default_destination_concurrency_limit). */
  slotLimit?: number;
  /**
   * How long a delivery waits for a slot (seconds; default 300, smtp_connection_reuse_time_limit:
   * by then every connection another node holds has had to close).
   */
  slotWaitSec?: number;
}

/** Slots for connections to a next hop, shared by every holder (see DeliveryOptions.slots). */
export interface ConnectionSlots {
  /** A free slot for `nexthop` under `limit`, or null when none is free now; call the function to give it back. */
  tryAcquire(nexthop: string, limit: number): Promise<(() => void) | null>;
}

/** How often a delivery asks again for a connection slot. */
const SLOT_POLL_MS = 100;

export type RecipientStatus = 'sent' | 'deferred' | 'bounced';

export interface RecipientResult {
  address: string;
  status: RecipientStatus;
  dsn: string;
  /** Postfix's delivery text (the reply, or "host X said: ...", or "connect to ..."). */
  text: string;
  /** "host[ip]:port", or "none" when no session was made. */
  relay: string;
  /** Remote MTA host name (for DSN Remote-MTA), when a session was made. */
  remoteMta?: string;
  /** Remote reply (for DSN Diagnostic-Code: smtp; ...), when the peer answered. */
  diagnostic?: string;
  delays: Delays;
}

export interface ProbeResult {
  status: 'deliverable' | 'undeliverable' | 'deferred';
  dsn: string;
  text: string;
  relay: string;
}

interface Pending {
  index: number;
  rcpt: EnvelopeRecipient;
}

interface Outcome {
  status: RecipientStatus;
  dsn: string;
  text: string;
  relay: string;
  remoteMta?: string;
  diagnostic?: string;
  setupDone?: number;
  connUse?: number;
  done: number;
}

function statusOf(dsn: string): RecipientStatus {
  return dsn.startsWith('5') ? 'bounced' : dsn.startsWith('2') ? 'sent' : 'deferred';
}

/** Groups recipients by next hop, keeping routing failures apart. */
async function route(recipients: EnvelopeRecipient[], opts: DeliveryOptions) {
  const groups = new Map<string, { hop: NextHop; pending: Pending[] }>();
  const failed: Array<{ p: Pending; failure: RouteFailure }> = [];
  for (let i = 0; i < recipients.length; i++) {
    const rcpt = recipients[i];
    let hop: NextHop | RouteFailure;
    try {
      hop = await chooseNextHop(rcpt.address, opts);
    } catch (err) {
      if (!(err instanceof NextHopSyntaxError)) throw err;
      // A broken transport_maps/relayhost entry is the administrator's to fix: defer, don't bounce.
      hop = { dsn: '4.3.5', text: `mail system configuration error: ${err.message}` };
    }
    if ('dsn' in hop) {
      failed.push({ p: { index: i, rcpt }, failure: hop });
      continue;
    }
    const g = groups.get(hop.key) ?? { hop, pending: [] };
    g.pending.push({ index: i, rcpt });
    groups.set(hop.key, g);
  }
  return { groups, failed };
}

/**
 * Runs transactions for one next hop until every recipient has a final outcome for this attempt.
 * `tx` builds the transaction for the recipients still pending.
 */
async function deliverToHop(
  hop: NextHop,
  pending: Pending[],
  build: (rcpts: EnvelopeRecipient[]) => Transaction,
  opts: DeliveryOptions,
  log: Logger,
  plainRetryOk = true,
  origin?: OriginalClient,
  connections = 0,
): Promise<Map<number, Outcome>> {
  const out = new Map<number, Outcome>();
  let left = pending.slice();
  let last: { dsn: string; text: string; relay: string; remoteMta?: string; diagnostic?: string; setupDone?: number; connUse?: number } | undefined;

  const runOn = async (session: SmtpSession, final: boolean): Promise<void> => {
    const setupDone = Date.now();
    let outcomes: RecipientOutcome[];
    // With the content written, the session goes back to the cache (or straight to a delivery
    // waiting for it) while this message's replies are still on their way (Transaction.onSent).
    let released = false;
    const cache = opts.cache;
    const onSent = cache ? () => {
      released = true;
      cache.put(hop.key, session);
    } : undefined;
    try {
      outcomes = await session.transaction(build(left.map((p) => p.rcpt)), origin, { reuse: !!cache, onSent, nextWaiting: cache ? () => cache.waiting(hop.key) : undefined });
    } catch (err) {
      if (!(err instanceof SessionError)) throw err;
      last = { dsn: err.dsn, text: err.text, relay: session.relay, remoteMta: session.address.name, diagnostic: err.reply?.text, setupDone };
      session.destroy();
      return;
    }
    const done = Date.now();
    const still: Pending[] = [];
    outcomes.forEach((o, i) => {
      const p = left[i];
      const base = { relay: session.relay, remoteMta: session.address.name, setupDone, connUse: session.uses, done };
      const diagnostic = o.klass === 2 ? undefined : o.text.replace(/^host \S+ said: /, '').replace(/ \(in reply to .* command\)$/, '');
      if (o.klass === 4 && !final) {
        // Not the last host: the next MX host gets a chance (Postfix keeps the recipient).
        last = { dsn: o.dsn, text: o.text, relay: session.relay, remoteMta: session.address.name, diagnostic, setupDone, connUse: session.uses };
        still.push(p);
        return;
      }
      out.set(p.index, { status: o.klass === 2 ? 'sent' : o.klass === 5 ? 'bounced' : 'deferred', dsn: o.dsn, text: o.text, diagnostic, ...base });
    });
    left = still;
    if (released) return;
    if (cache && (await session.reset())) cache.put(hop.key, session);
    else await session.quit();
  };

  // This node's own limit on connections to the destination (ConnectionCache.acquire), and what a wait that ran out says.
  const acquire = () => opts.cache!.acquire(hop.key, connections, (opts.slotWaitSec ?? 300) * 1000);
  const allBusy = () => ({ dsn: '4.4.5', text: `delivery temporarily suspended: all ${connections} connections to ${hop.key} stayed busy`, relay: 'none' });

  // A cached session for this destination comes first: no DNS, no connection setup.
  const cached = opts.cache?.take(hop.key);
  // It answered RSET before it was cached; if the peer dropped it since, the recipients simply
  // stay pending and go through the normal path below.
  if (cached) await runOn(cached, false);

  // This node's own limit on connections to the destination (the queue manager runs more
  // deliveries than connections): with every connection busy, wait for one to be handed over.
  // That session stands for the first address, as below, but needs no DNS lookup — most
  // deliveries of a flush ride on one (an MX and two address lookups per message in a drain's
  // profile, bench/qmgr-drain.ts). Whether it was the last address to try is decided after it,
  // only for recipients it deferred. `opened`: leave to open one connection instead.
  let opened: (() => void) | undefined;
  let handedOver = false;
  let suspended = false;
  if (!cached && left.length && connections > 0 && opts.cache) {
    const got = await acquire();
    if (!got) {
      last = allBusy();
      suspended = true;
    } else if ('session' in got) {
      handedOver = true;
      await runOn(got.session, false);
    } else opened = got.done;
  }

  try {
    if (left.length && !suspended) await tryAddresses();
  } finally {
    opened?.(); // not used: no address to connect to
  }

  async function tryAddresses(): Promise<void> {
    const resolved = await resolveNextHop(hop, opts);
    if (!resolved.ok) {
      if (!last) last = { ...resolved.failure, relay: 'none' };
    } else {
      const addrLimit = opts.mxAddressLimit ?? 5;
      const sessLimit = opts.mxSessionLimit ?? 2;
      const addrs = addrLimit > 0 ? resolved.addresses.slice(0, addrLimit) : resolved.addresses;
      // The handed-over session above was the first address's.
      let sessions = handedOver ? 1 : 0;
      // A session for address i: one another delivery handed over (or a cached one, after a wait
      // for a slot) stands for it, so that a recipient refused with 4xx moves on to the next
      // address as it would from a new connection; undefined: this address failed, try the next;
      // null: no connection may be had now.
      const obtain = async (a: MxAddress): Promise<SmtpSession | undefined | null> => {
        // This node's own limit: with every connection busy, wait for one to be handed over.
        let local = () => undefined as void;
        if (opened) {
          local = opened;
          opened = undefined;
        } else if (connections > 0 && opts.cache) {
          const got = await acquire();
          if (!got) {
            last = allBusy();
            return null;
          }
          if ('session' in got) return got.session;
          local = got.done;
        }
        const slot = await connectionSlot(hop, opts);
        if (slot === 'cached') {
          local();
          // While it waited for a slot, one of this node's connections came free: use it.
          return opts.cache?.take(hop.key) ?? obtain(a);
        }
        if (!slot) {
          local();
          last = { dsn: '4.4.5', text: `delivery temporarily suspended: all ${opts.slotLimit ?? 0} connection slots of ${hop.key} are in use by other nodes`, relay: 'none' };
          return null;
        }
        try {
          const session = await openSecured(hop, a, { ...opts.session, logger: opts.session.logger ?? log }, opts.tls, log, plainRetryOk);
          void session.closed.then(() => {
            slot();
            local();
          });
          return session;
        } catch (err) {
          slot();
          local();
          if (!(err instanceof SessionError)) throw err;
          if (err.kind === 'connect') logConnectFailure(log, err.text);
          // relay=none when no greeting was seen (connect failures, and TLS policy decided
          // before connecting), as Postfix logs them.
          const noPeer = err.kind === 'connect' || err.kind === 'policy';
          last = { dsn: err.dsn, text: err.text, relay: noPeer ? 'none' : `${a.name}[${a.ip}]:${a.port}`, remoteMta: noPeer ? undefined : a.name, diagnostic: err.reply?.text };
          return undefined;
        }
      };
      for (let i = handedOver ? 1 : 0; i < addrs.length && left.length && !(sessLimit > 0 && sessions >= sessLimit); i++) {
        const session = await obtain(addrs[i]);
        if (session === null) break;
        if (!session) continue;
        sessions++;
        const final = i === addrs.length - 1 || (sessLimit > 0 && sessions >= sessLimit);
        await runOn(session, final);
      }
    }
  }

  const done = Date.now();
  for (const p of left) {
    const l = last ?? { dsn: '4.4.1', text: 'delivery temporarily suspended', relay: 'none' };
    // What is still pending after every host is deferred unless the last failure was permanent.
    out.set(p.index, { status: l.dsn.startsWith('5') ? 'bounced' : 'deferred', dsn: l.dsn, text: l.text, relay: l.relay, remoteMta: l.remoteMta, diagnostic: l.diagnostic, setupDone: l.setupDone, connUse: l.connUse, done });
  }
  return out;
}

/**
 * A slot for one more connection to `hop` (a no-op without shared slots): waits while every slot
 * is taken — another node keeps its connections while it has mail for the hop, and the limit is
 * used all the same — up to slotWaitSec; 'cached' when one of this node's connections to it came
 * free meanwhile; null when none came free in time.
 */
async function connectionSlot(hop: NextHop, opts: DeliveryOptions): Promise<(() => void) | 'cached' | null> {
  if (!opts.slots) return () => undefined;
  const until = Date.now() + (opts.slotWaitSec ?? 300) * 1000;
  for (;;) {
    const release = await opts.slots.tryAcquire(hop.key, opts.slotLimit ?? 20).catch(() => null);
    if (release) return release;
    if (opts.cache?.has(hop.key)) return 'cached';
    if (Date.now() >= until) return null;
    await new Promise((r) => setTimeout(r, SLOT_POLL_MS));
  }
}

function delaysFor(arrival: number, active: number, start: number, o: Outcome): Delays {
  const s = (ms: number) => Math.max(0, ms) / 1000;
  const setupEnd = o.setupDone ?? o.done;
  return {
    beforeActive: s(active - arrival),
    inActive: s(start - active),
    setup: s(setupEnd - start),
    transmission: s(o.done - setupEnd),
    total: s(o.done - arrival),
  };
}

/** What the queue manager says about the destination of a delivery. */
export interface DeliveryLimits {
  /**
   * At most this many connections to each next hop from this process (0: no limit here); the
   * queue manager may then start more deliveries than connections (ConnectionCache.acquire).
   */
  connections?: number;
}

/** Delivers a message to all its recipients; one result per recipient, in the given order. */
export async function deliver(msg: OutboundMessage, opts: DeliveryOptions, limits: DeliveryLimits = {}): Promise<RecipientResult[]> {
  const start = Date.now();
  const arrival = msg.arrivalTime ?? start;
  const active = msg.activeTime ?? start;
  const log = opts.logger ?? maillog.logger('smtp');
  const results: RecipientResult[] = new Array(msg.recipients.length);
  const { groups, failed } = msg.nexthop
    ? { groups: new Map([[msg.nexthop.key, { hop: msg.nexthop, pending: msg.recipients.map((rcpt, index) => ({ index, rcpt })) }]]), failed: [] }
    : await route(msg.recipients, opts);

  const record = (index: number, o: Outcome, logStatus?: DeliveryStatus) => {
    const rcpt = msg.recipients[index];
    const delays = delaysFor(arrival, active, start, o);
    results[index] = { address: rcpt.address, status: o.status, dsn: o.dsn, text: o.text, relay: o.relay, remoteMta: o.remoteMta, diagnostic: o.diagnostic, delays };
    const orig = rcpt.orcpt?.replace(/^rfc822;/i, '');
    logDelivery(log, { queueId: msg.queueId, recipient: rcpt.address, origRecipient: orig, relay: o.relay, connUse: o.connUse, delays, dsn: o.dsn, status: logStatus ?? o.status, text: o.text }, opts.delayResolution ?? 2);
  };

  for (const { p, failure } of failed) {
    record(p.index, { status: statusOf(failure.dsn), dsn: failure.dsn, text: failure.text, relay: 'none', done: Date.now() });
  }
  const build = (rcpts: EnvelopeRecipient[]): Transaction => ({
    sender: msg.sender,
    recipients: rcpts,
    ret: msg.ret,
    envid: msg.envid,
    smtputf8: msg.smtputf8,
    bodyType: msg.bodyType,
    size: msg.size,
    body: msg.body,
  });
  await Promise.all(
    [...groups.values()].map(async ({ hop, pending }) => {
      // Postfix's PLAINTEXT_FALLBACK_OK: only mail that has already waited minimal_backoff_time.
      const plainRetryOk = active - arrival >= (opts.minimalBackoffSec ?? 300) * 1000;
      // Our own mail (notices, local submission) has no client worth forwarding: on the primary,
      // our address would stand for a client on its own network (or for itself).
      const origin = msg.client && !opts.isSelf(msg.client.address) ? msg.client : undefined;
      const out = await deliverToHop(hop, pending, build, opts, log, plainRetryOk, origin, limits.connections ?? 0);
      for (const [index, o] of out) record(index, o);
    }),
  );
  return results;
}

export interface ProbeOptions extends DeliveryOptions {
  /** Queue ID for the log line (Postfix's probe is a queued message; default "NOQUEUE"). */
  queueId?: string;
}

/**
 * Address probe for verify(8): MAIL FROM, RCPT TO, then RSET (session kept) or QUIT — no DATA.
 * 2xx → deliverable, 5xx → undeliverable, anything else (4xx, connect failure, DNS trouble) →
 * deferred. The log line says "undeliverable" for every failure, as Postfix's does.
 */
export async function probe(address: string, sender: string, opts: ProbeOptions): Promise<ProbeResult> {
  const start = Date.now();
  const log = opts.logger ?? maillog.logger('smtp');
  const rcpt: EnvelopeRecipient = { address };
  const { groups, failed } = await route([rcpt], opts);
  let o: Outcome;
  if (failed.length) {
    const f = failed[0].failure;
    o = { status: statusOf(f.dsn), dsn: f.dsn, text: f.text, relay: 'none', done: Date.now() };
  } else {
    const [{ hop, pending }] = [...groups.values()];
    const out = await deliverToHop(hop, pending, (rcpts) => ({ sender, recipients: rcpts }), opts, log);
    o = out.get(0)!;
  }
  const status = o.status === 'sent' ? 'deliverable' : o.status === 'bounced' ? 'undeliverable' : 'deferred';
  logDelivery(log, {
    queueId: opts.queueId ?? 'NOQUEUE',
    recipient: address,
    relay: o.relay,
    connUse: o.connUse,
    delays: delaysFor(start, start, start, o),
    dsn: o.dsn,
    status: status === 'deliverable' ? 'deliverable' : 'undeliverable',
    text: o.text,
  }, opts.delayResolution ?? 2);
  return { status, dsn: o.dsn, text: o.text, relay: o.relay };
}
