/**
 * In-process EventLog with the same routing, ack, retry, prefetch and
 * dead-letter behaviour as the RabbitMQ log, so one process (and the unit
 * tests) need no broker. Nothing survives the process: it is the lane of
 * `npm start` and of tests, not of production.
 *
 * Like a RabbitMQ queue, a consumer's queue exists from its first `consume`
 * on and keeps collecting events after the consumer closes; events published
 * before any queue matches are dropped (unroutable), as by a topic exchange.
 */
import type { Logger } from 'pino';
import type { LaneHealth } from '../lanes.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ConsumerHandle, ConsumerSpec, DeadLetterReason, EventHandler, EventLog, HandlerOutcome, LifecycleEvent, PublishOptions } from './event-log.js';
import { normalizeConsumerSpec, retryDelay, type NormalizedConsumerSpec } from './retry.js';
import { topicMatches } from './topic.js';
import { errorText } from '../errors.js';

export interface DeadLetter {
  event: LifecycleEvent;
  /** Deliveries made before the event was dead-lettered. */
  attempts: number;
  reason: DeadLetterReason;
  /** Message of the last handler error, if it threw. */
  error?: string;
}

export interface MemoryEventLogOptions {
  /** Optional pino logger; handler errors are logged at `warn`. Default: silent. */
  logger?: Logger;
}

interface Pending {
  event: LifecycleEvent;
  attempt: number;
  traceparent?: string | undefined;
}

class MemoryQueue {
  readonly ready: Pending[] = [];
  readonly deadLetters: DeadLetter[] = [];
  readonly timers = new Set<NodeJS.Timeout>();
  consumer: MemoryConsumer | undefined;

  constructor(public spec: NormalizedConsumerSpec) {}

  accepts(type: string): boolean {
    return this.spec.bindings.some((pattern) => topicMatches(pattern, type));
  }
}

class MemoryConsumer implements ConsumerHandle {
  private inFlight = 0;
  private closing: Promise<void> | undefined;
  private idle: (() => void) | undefined;
  private scheduled = false;

  constructor(
    private readonly queueState: MemoryQueue,
    private readonly handler: EventHandler,
    private readonly logger: Logger | undefined,
  ) {}

  get queue(): string {
    return this.queueState.spec.queue;
  }

  /** Deliver as many ready events as prefetch allows, on a later tick (publish never runs handlers inline). */
  schedule(): void {
    if (this.scheduled || this.closing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    const q = this.queueState;
    while (!this.closing && this.inFlight < q.spec.prefetch && q.ready.length > 0) {
      const pending = q.ready.shift()!;
      this.inFlight++;
      void this.deliver(pending);
    }
  }

  private async deliver(pending: Pending): Promise<void> {
    const q = this.queueState;
    let outcome: HandlerOutcome;
    let error: string | undefined;
    try {
      // A copy: a handler that mutates its event must not change what a retry delivers.
      outcome = await this.handler(structuredClone(pending.event), {
        attempt: pending.attempt,
        queue: q.spec.queue,
        ...(pending.traceparent === undefined ? {} : { traceparent: pending.traceparent }),
      });
      if (outcome !== 'ack' && outcome !== 'retry' && outcome !== 'dead_letter') outcome = 'retry';
    } catch (err) {
      outcome = 'retry';
      error = errorText(err);
      this.logger?.warn({ err, queue: q.spec.queue, event: pending.event.id, attempt: pending.attempt }, 'event handler failed');
    }
    if (outcome === 'retry' && pending.attempt < q.spec.maxAttempts) {
      const timer = setTimeout(
        () => {
          q.timers.delete(timer);
          q.ready.push({ event: pending.event, attempt: pending.attempt + 1, traceparent: pending.traceparent });
          q.consumer?.schedule();
        },
        retryDelay(q.spec, pending.attempt),
      );
      q.timers.add(timer);
    } else if (outcome !== 'ack') {
      const reason: DeadLetterReason = outcome === 'dead_letter' ? 'dead_letter' : 'max_attempts';
      q.deadLetters.push(
        error === undefined ? { event: pending.event, attempts: pending.attempt, reason } : { event: pending.event, attempts: pending.attempt, reason, error },
      );
    }
    this.inFlight--;
    if (this.closing) {
      if (this.inFlight === 0) this.idle?.();
    } else {
      this.pump();
    }
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.queueState.consumer === this) this.queueState.consumer = undefined;
      if (this.inFlight === 0) resolve();
      else this.idle = resolve;
    });
    return this.closing;
  }
}

export class MemoryEventLog implements EventLog {
  readonly driver = 'memory';
  private readonly queues = new Map<string, MemoryQueue>();
  private readonly consumers = new Set<MemoryConsumer>();
  private state: 'idle' | 'running' | 'closed' = 'idle';
  private closing: Promise<void> | undefined;
  private readonly logger: Logger | undefined;

  constructor(options: MemoryEventLogOptions = {}) {
    this.logger = options.logger;
  }

  async start(): Promise<void> {
    if (this.state === 'idle') this.state = 'running';
  }

  async publish(event: LifecycleEvent, options?: PublishOptions): Promise<void> {
    if (this.state === 'closed' || this.closing) throw new NerveError(ErrorCode.Unavailable, 'event log is closed');
    const copy = structuredClone(event);
    for (const q of this.queues.values()) {
      if (!q.accepts(copy.type)) continue;
      q.ready.push({ event: copy, attempt: 1, traceparent: options?.traceparent });
      q.consumer?.schedule();
    }
  }

  async consume(spec: ConsumerSpec, handler: EventHandler): Promise<ConsumerHandle> {
    if (this.state === 'closed' || this.closing) throw new NerveError(ErrorCode.Unavailable, 'event log is closed');
    const normalized = normalizeConsumerSpec(spec);
    let q = this.queues.get(normalized.queue);
    if (!q) {
      q = new MemoryQueue(normalized);
      this.queues.set(normalized.queue, q);
    } else {
      // Like re-declaring a queue: the bindings accumulate, the settings follow the latest consumer.
      q.spec = { ...normalized, bindings: [...new Set([...q.spec.bindings, ...normalized.bindings])] };
    }
    if (q.consumer) throw new NerveError(ErrorCode.Internal, `queue ${normalized.queue} already has a consumer`);
    const consumer = new MemoryConsumer(q, handler, this.logger);
    q.consumer = consumer;
    this.consumers.add(consumer);
    consumer.schedule();
    return consumer;
  }

  /** Nothing waits: the memory lane accepts every publish immediately. */
  outboxDepth(): number {
    return 0;
  }

  health(): LaneHealth {
    return this.state === 'closed' ? { lane: 'events', driver: this.driver, ok: false, detail: 'closed' } : { lane: 'events', driver: this.driver, ok: true };
  }

  /** Events a consumer's queue dead-lettered, oldest first (for tests and the admin page). */
  deadLetters(queue: string): DeadLetter[] {
    return [...(this.queues.get(queue)?.deadLetters ?? [])];
  }

  /** Events waiting in a queue (not in a handler, not waiting for a retry). */
  queueDepth(queue: string): number {
    return this.queues.get(queue)?.ready.length ?? 0;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.consumers].map((c) => c.close()));
      for (const q of this.queues.values()) {
        for (const timer of q.timers) clearTimeout(timer);
        q.timers.clear();
      }
      this.state = 'closed';
    })();
    return this.closing;
  }
}
