// What the queue manager's stages share: the state of one queue manager (active messages,
// destinations, the activation queue, counters) and the operations one stage asks of another.
// Activation, the delivery pass, the end of a pass, flush and the destination watch each live in
// their own file as functions of a QmgrCore; the Qmgr class builds the core and wires the stages
// together, so that no stage imports another. Trusts nothing; holds no I/O of its own.

import type { Logger } from '../log/index.js';
import type { QueueEntry, SchedulingQueue } from '../queue/index.js';
import type { DeliveryOptions, MxAddress, NextHop, OutboundMessage, RecipientResult } from '../smtp/index.js';
import type { Destination } from './destination.js';
import type { QmgrParams } from './params.js';
import type { NoticeBuilder, NoticeRecipient } from './types.js';

/** The destination a delivery is for: its key and its concurrency limit (delivery agents share it out). */
export interface DeliveryRoute {
  key: string;
  limit: number;
  /** Connections the destination may have now (its window), when more deliveries than that are in flight (QmgrOptions.deliveriesPerConnection). */
  connections?: number;
}

export type DeliverFn = (msg: OutboundMessage, opts: DeliveryOptions, route?: DeliveryRoute) => Promise<RecipientResult[]>;
export type ProbeFn = (addr: MxAddress, timeoutMs: number) => Promise<boolean>;

/** A message the queue manager is working on (its file is in active/). */
export interface ActiveMsg {
  id: string;
  entry: QueueEntry;
  head: Awaited<ReturnType<SchedulingQueue['load']>>;
  activeTime: number;
  /** Outstanding work: jobs plus one while activation is still grouping. */
  work: number;
  /** Recipients that bounced in this pass (notice not yet queued). */
  bounced: Map<number, NoticeRecipient>;
  /** Destination key of each pending recipient. */
  dests: Map<number, string>;
  lastReason: string;
  gone: boolean;
  /** postsuper -r arrived while it was being delivered: due again at once. */
  requeued: boolean;
  /** Our own queue.defer() is moving it to deferred/ (not a postsuper -r). */
  deferring: boolean;
}

export interface QmgrCore {
  readonly params: QmgrParams;
  readonly queue: SchedulingQueue;
  readonly delivery: DeliveryOptions;
  readonly deliverFn: DeliverFn;
  readonly deliveriesPerConnection: number;
  readonly notices?: NoticeBuilder;
  /** The clock (ms since the epoch) of every retry, lifetime, dead-list and delay decision. */
  readonly now: () => number;
  readonly random: () => number;
  readonly probeFn: ProbeFn;
  readonly log: Logger;
  readonly dests: Map<string, Destination>;
  readonly active: Map<string, ActiveMsg>;
  readonly activation: Array<{ id: string; flush: boolean }>;
  readonly queued: Map<string, boolean>;
  /** Deferred message → destination keys of its pending recipients. */
  readonly deferredDests: Map<string, string[]>;
  readonly counters: { delivered: number; bounced: number; deferred: number; removed: number };
  readonly peaks: Map<string, number>;
  activating: number;
  running: boolean;

  /** Keeps a promise until it settles, so that stop() can wait for work in flight. */
  track<T>(p: Promise<T>): Promise<T>;
  /** Activation: schedule a message (flush: ignore the dead list). */
  enqueue(id: string, flush: boolean): void;
  pumpActivation(): void;
  /** The destination of a next hop, created on first use. */
  destination(hop: NextHop): Destination;
  /** Delivery pass: start what the destination's window allows. */
  pumpDest(dest: Destination): void;
  /** One piece of a message's work is done; the last one ends the pass. */
  workDone(msg: ActiveMsg): Promise<void>;
  /** A queue file update failed. */
  lost(msg: ActiveMsg, err: unknown): void;
  /** A result decided without a delivery: log it and record it. */
  immediate(msg: ActiveMsg, idx: number[], dsn: string, text: string): Promise<void>;
  /** Deferred mail index: which destinations a deferred message waits for. */
  noteDeferred(id: string, keys: string[]): void;
  forgetDeferred(id: string): void;
  /** Destination watch: probe an unreachable destination later. */
  armWatch(dest: Destination): void;
  /** Events of the Qmgr. */
  emitDone(id: string): void;
  emitDestinationUp(domain: string, nexthop: string): void;
}
