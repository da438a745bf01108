// The life of a queue transaction, whatever it writes to (files: writer.ts; PostgreSQL:
// pg/transaction.ts): write() and commit() run one at a time in call order; the first failure
// decides the reply and leaves only abort(); abort() waits for the step in progress, discards
// what was written and gives the id back; a committed message stays. The stores say how to
// write, commit, discard and word a failure. Trusts its subclasses for durability.

import { SmtpError, type Envelope } from '../mail/index.js';
import { ERR_WRITE, checkSize, MessageIdScan } from './txparts.js';

/** One message on its way into the queue (maddy's delivery: body, then commit or abort). */
export interface QueueTransaction {
  /** The queue id, reserved at begin (smtpd names it in the Received: header before the content). */
  readonly id: string;
  /**
   * Stream content (CRLF lines) into the transaction's temporary file. Rejects with SmtpError:
   * 552 5.3.4 over message_size_limit, 452 4.3.1 disk full, 451 4.3.0 other write error; after a
   * rejection only abort() remains. May be called more than once (chunks are appended). The
   * content is read to its end even after a size or write error, so that the caller's stream (the
   * client's DATA) is consumed; a stream that errors rejects and leaves no file.
   */
  write(content: AsyncIterable<Buffer | string> | Iterable<Buffer | string>): Promise<void>;
  /**
   * Finish the file, fsync it, rename it into `queue` ('active' by default), fsync that directory,
   * index it and log it. Resolves with the id only when the message is durable.
   */
  commit(opts?: CommitOptions): Promise<string>;
  /**
   * Drop the transaction: the temporary file is removed and the id released. Idempotent; safe
   * after a failed write or commit; a no-op after a commit (a committed message stays).
   */
  abort(): Promise<void>;
}

export interface CommitOptions {
  /** The queue to commit into: active (the queue manager takes it from there), deferred or hold. */
  queue?: 'active' | 'deferred' | 'hold';
}

export interface BeginOptions {
  /**
   * Log `ID: client=name[addr]` when the message is committed. Default true; smtpd passes false
   * because it logs its own line (with the SASL fields) once the id is known.
   */
  logClient?: boolean;
}

type State = 'open' | 'failed' | 'committed' | 'aborted';

export abstract class TransactionBase implements QueueTransaction {
  protected state: State = 'open';
  protected failure: SmtpError | null = null;
  /** write() and commit() run one at a time, in call order. */
  private busy: Promise<unknown> = Promise.resolve();
  private aborting: Promise<void> | null = null;
  /** Bytes of content so far. */
  protected size = 0;
  protected readonly messageIdScan = new MessageIdScan();
  protected messageId: string | undefined;

  constructor(
    readonly id: string,
    protected readonly env: Envelope,
    protected readonly logClient: boolean,
    private readonly sizeLimit: number,
    private readonly releaseId: (id: string) => void,
  ) {}

  write(content: AsyncIterable<Buffer | string> | Iterable<Buffer | string>): Promise<void> {
    return this.serially(() => this.writeNow(content));
  }

  commit(opts: CommitOptions = {}): Promise<string> {
    return this.serially(() => this.commitNow(opts.queue ?? 'active'));
  }

  abort(): Promise<void> {
    if (this.state === 'committed') return Promise.resolve();
    this.state = 'aborted';
    // After the write or commit in progress: a write still reads its stream to the end (the
    // caller ends or destroys it); a commit already under way completes, and the message stays.
    this.aborting ??= this.busy.then(async () => {
      await this.discard();
      this.releaseId(this.id);
    });
    return this.aborting;
  }

  protected abstract writeNow(content: AsyncIterable<Buffer | string> | Iterable<Buffer | string>): Promise<void>;
  protected abstract commitNow(queue: 'active' | 'deferred' | 'hold'): Promise<string>;
  /** Drop what was written (`cause`: the failure, when there was one). */
  protected abstract discard(cause?: unknown): Promise<void>;
  /** A failure as the reply the client gets. */
  protected abstract asReply(err: unknown): SmtpError;

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.busy.then(fn, fn);
    this.busy = p.catch(() => undefined);
    return p;
  }

  /** Throw unless the transaction can still take content or a commit. */
  protected usable(): void {
    if (this.state === 'open') return;
    if (this.state === 'failed') throw this.failure!;
    throw new SmtpError(ERR_WRITE(), `${this.id}: transaction already ${this.state}`);
  }

  /** Count a chunk of content against message_size_limit and scan it for the Message-ID. */
  protected account(chunk: Buffer): void {
    this.size += chunk.length;
    checkSize(this.size, this.sizeLimit);
    this.messageIdScan.push(chunk);
  }

  /** Record the failure (the first one counts), discard what was written, return the reply. */
  protected async fail(err: unknown): Promise<SmtpError> {
    if (this.state === 'open') {
      this.state = 'failed';
      this.failure = this.asReply(err);
    }
    await this.discard(err);
    return this.failure ?? this.asReply(err);
  }

  /** The step in progress and the commit are done: the message is in its queue. */
  protected markCommitted(): void {
    this.state = 'committed';
  }
}
