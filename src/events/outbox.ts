/**
 * A bounded, ordered outbox in front of a lane that can go away (docs/events.md,
 * "Outbox"). `enqueue` resolves once `send` succeeded for the item, and rejects
 * at once with `unavailable` when full, so the caller refuses work rather than
 * acknowledging and losing it. A send that fails in flight goes back to its
 * place: order is kept, delivery is at least once. Nothing leaves the outbox
 * but by a successful send or a rejected promise.
 */
import type { Logger } from 'pino';
import { fullJitter } from '../backoff.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';

export interface OutboxOptions<T> {
  /** Items accepted but not yet sent successfully, at most. Default 10000. */
  limit?: number;
  /** Sends in flight at once while the lane is ready. Default 256. */
  maxInFlight?: number;
  /** Send one item; resolve when the lane has taken it durably. */
  send: (item: T) => Promise<void>;
  /** Whether the lane can take sends now. */
  isReady: () => boolean;
  /**
   * Whether a send failure may be retried forever (a lost connection) rather
   * than counting towards `maxSendFailures`. Default: always true.
   */
  isTransient?: (error: unknown) => boolean;
  /** Non-transient failures of one item before its `enqueue` rejects. Default 5. */
  maxSendFailures?: number;
  /** Backoff base after a failed send: full jitter, the window doubling up to 2 s. Default 50 ms. */
  retryBaseMs?: number;
  logger?: Logger;
}

interface Entry<T> {
  seq: number;
  item: T;
  failures: number;
  /** When its current send started (ms), while in flight. */
  sentAt: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

export class Outbox<T> {
  readonly limit: number;
  private readonly maxInFlight: number;
  private readonly maxSendFailures: number;
  private readonly retryBaseMs: number;
  private readonly options: OutboxOptions<T>;
  /**
   * Waiting items from `head` on, ordered by `seq`. An index rather than
   * `shift()`: past ~16k items V8 moves the whole array on every shift.
   */
  private readonly waiting: Entry<T>[] = [];
  private head = 0;
  /** Entries sent and not yet settled, in send order (a Set keeps insertion order). */
  private readonly inFlight = new Set<Entry<T>>();
  private nextSeq = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Failed rounds since the last successful send: the backoff's exponent. */
  private retryAttempt = 0;
  private drainWaiters: Array<() => void> = [];
  private stopped = false;

  constructor(options: OutboxOptions<T>) {
    this.options = options;
    this.limit = options.limit ?? 10_000;
    this.maxInFlight = options.maxInFlight ?? 256;
    this.maxSendFailures = options.maxSendFailures ?? 5;
    this.retryBaseMs = options.retryBaseMs ?? 50;
  }

  /** Items accepted and not yet sent successfully (waiting plus in flight). */
  depth(): number {
    return this.waiting.length - this.head + this.inFlight.size;
  }

  /** How long the oldest send still in flight has waited for the lane, ms (0 when none is in flight). */
  oldestInFlightMs(now = Date.now()): number {
    for (const entry of this.inFlight) return now - entry.sentAt;
    return 0;
  }

  enqueue(item: T): Promise<void> {
    if (this.stopped) return Promise.reject(new NerveError(ErrorCode.Unavailable, 'event outbox is closed'));
    if (this.depth() >= this.limit) {
      return Promise.reject(new NerveError(ErrorCode.Unavailable, `event outbox is full (${this.limit} events waiting for the broker)`));
    }
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ seq: this.nextSeq++, item, failures: 0, sentAt: 0, resolve, reject });
      this.pump();
    });
  }

  /** Try to send now (call when the lane becomes ready again). */
  pump(): void {
    if (this.stopped) return;
    while (this.inFlight.size < this.maxInFlight && this.waiting.length > this.head && this.options.isReady()) {
      const entry = this.waiting[this.head++]!;
      this.compact();
      entry.sentAt = Date.now();
      this.inFlight.add(entry);
      this.options.send(entry.item).then(
        () => this.settled(entry, undefined),
        (error: unknown) => this.settled(entry, error ?? new Error('send failed')),
      );
    }
  }

  private settled(entry: Entry<T>, error: unknown): void {
    this.inFlight.delete(entry);
    if (error === undefined) {
      this.retryAttempt = 0;
      entry.resolve();
    } else if (this.stopped) {
      entry.reject(new NerveError(ErrorCode.Unavailable, 'event outbox closed before the broker confirmed', { cause: error }));
    } else {
      const transient = this.options.isTransient?.(error) ?? true;
      if (!transient) entry.failures++;
      if (entry.failures >= this.maxSendFailures) {
        this.options.logger?.error({ err: error }, 'event publish failed permanently');
        entry.reject(new NerveError(ErrorCode.Unavailable, 'the broker refused the event', { cause: error }));
      } else {
        this.putBack(entry);
        this.scheduleRetry();
      }
    }
    if (this.depth() === 0) this.notifyDrained();
    else if (error === undefined) this.pump();
  }

  /** Back into its place by sequence number, so order survives a cut with many sends in flight. */
  private putBack(entry: Entry<T>): void {
    let index = this.waiting.length;
    while (index > this.head && this.waiting[index - 1]!.seq > entry.seq) index--;
    if (index === this.head && this.head > 0) this.waiting[--this.head] = entry;
    else this.waiting.splice(index, 0, entry);
  }

  /** Drop the sent items before `head` once they are most of the array (amortized O(1) per item). */
  private compact(): void {
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    // Jittered, so the nodes' outboxes do not all retry a recovering broker at once.
    const wait = fullJitter(this.retryAttempt++, this.retryBaseMs, 2000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
      // Not ready yet: keep polling (bounded by the 2 s cap) until the lane is back.
      if (this.waiting.length > this.head && !this.options.isReady()) this.scheduleRetry();
    }, wait);
  }

  private notifyDrained(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolve true when empty, false if `timeoutMs` passed first. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.depth() === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.drainWaiters = this.drainWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      this.drainWaiters.push(done);
      this.pump();
    });
  }

  /**
   * Stop for good: reject everything still waiting with `unavailable` and
   * return how many were rejected (sends in flight settle on their own).
   */
  stop(): number {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const rejected = this.waiting.splice(this.head);
    this.waiting.length = 0;
    this.head = 0;
    for (const entry of rejected) {
      entry.reject(new NerveError(ErrorCode.Unavailable, 'event log closed before the broker took the event'));
    }
    return rejected.length;
  }
}
