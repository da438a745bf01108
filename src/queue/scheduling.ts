// What the queue manager asks of a queue (docs/cluster.md, "Delivery across nodes"): the index of
// the messages it may schedule, their envelope and content, the results of its attempts, the moves
// it makes and the events that keep it in step. Two queues implement it: the file Queue
// (queue.ts: every message on this node's disk) and the PostgreSQL PgQueue (pg/queue.ts: the
// messages this node holds a lease on, from a queue several nodes share). Holds no code.

import type { EventEmitter } from 'node:events';
import type { Envelope } from '../mail/index.js';
import type { Logger } from '../log/index.js';
import type { QueueName, QueueFileHead, RetryState } from './file.js';
import type { QueueEntry, QueueEvents } from './entry.js';
import type { RecipientResult } from './journal.js';
import type { BeginOptions, QueueTransaction } from './writer.js';

/** A message's envelope, recipient states and retry state, as the queue manager loads it. */
export type LoadedMessage = Pick<QueueFileHead, 'envelope' | 'states' | 'retry' | 'messageSize' | 'messageId'> & { id: string; queue: QueueName };

export interface SchedulingQueue extends EventEmitter<QueueEvents> {
  /** queue_directory (the status view counts its incoming/ and corrupt/ folders). */
  readonly dir: string;
  /** A logger for a service name, on this queue's maillog. */
  logger(service: string): Logger;
  /** Start taking in one message (the queue manager's bounce and delay notices). */
  begin(env: Envelope, opts?: BeginOptions): QueueTransaction;

  get(id: string): QueueEntry | undefined;
  has(id: string): boolean;
  /** Messages in one queue (or all), oldest first. */
  list(queue?: QueueName): QueueEntry[];
  /** `statesFromIndex`: recipient statuses and retry state as the index has them, no reasons (a queue may ignore it and load everything). */
  load(id: string, opts?: { statesFromIndex?: boolean }): Promise<LoadedMessage>;
  /** The content as stored (CRLF lines), in chunks. */
  content(id: string): AsyncIterable<Buffer>;
  /** The message's file, for a delivery agent thread that reads it itself (file queues only). */
  path?(queue: QueueName, id: string): string;

  markDelivered(id: string, recipients: number[], result: RecipientResult): Promise<void>;
  markBounced(id: string, recipients: number[], result: RecipientResult): Promise<void>;
  markDeferred(id: string, recipients: number[], result: RecipientResult): Promise<void>;
  /** After an attempt that left recipients to retry: count it, set the next attempt, move to deferred. */
  defer(id: string, nextAttempt: number, reason: string): Promise<void>;
  updateRetry(id: string, patch: Partial<RetryState>): Promise<void>;
  markDelayWarningSent(id: string): Promise<void>;
  moveTo(id: string, queue: QueueName): Promise<void>;
  remove(id: string, service?: string, opts?: { durable?: boolean; recycle?: boolean }): Promise<void>;
}
