/**
 * One consumer of the RabbitMQ cold lane: its work, retry and dead-letter
 * queues, and the handler's answer applied. A retry is republished (confirmed)
 * to a delay queue with the next attempt number, and only then is the
 * original acked: a crash in between redelivers, never loses. One delay queue
 * per delay rather than a per-message TTL, because RabbitMQ expires only the
 * head of a queue: a long delay would hold up a short one behind it.
 */
import type { Logger } from 'pino';
import { ConsumerStatus, type AsyncMessage, type Connection, type Consumer, type Publisher } from 'rabbitmq-client';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ConsumerHandle, DeadLetterReason, EventHandler, HandlerOutcome, LifecycleEvent } from './event-log.js';
import { parseEvent } from './events.js';
import { retryDelay, retryDelays, type NormalizedConsumerSpec } from './retry.js';
import { closeWithin } from '../close-within.js';
import { errorText } from '../errors.js';
import { batchingAcks } from './ack-batcher.js';

/** Header carrying the delivery number of a retried event (absent on the first delivery). */
export const ATTEMPT_HEADER = 'x-nerve-attempt';
/** W3C trace context of the span that emitted the event (src/tracing/), kept across retries. */
export const TRACEPARENT_HEADER = 'traceparent';
/** Headers set on dead-lettered events. */
export const REASON_HEADER = 'x-nerve-reason';
const ERROR_HEADER = 'x-nerve-error';

/** The lane's names and declarations a consumer needs (RabbitEventLog). */
export interface ConsumerTopology {
  readonly exchange: string;
  exchangeDeclaration(): { exchange: string; type: 'topic'; durable: true };
  queueName(queue: string): string;
  deadLetterQueueName(queue: string): string;
  retryQueueName(queue: string, delayMs: number): string;
  queueArguments(extra?: Record<string, unknown>): Record<string, unknown>;
}

function headerTraceparent(msg: AsyncMessage): string | undefined {
  const value: unknown = msg.headers?.[TRACEPARENT_HEADER];
  return typeof value === 'string' && value.length <= 512 ? value : undefined;
}

/** A retried event keeps its trace context. */
function traceHeaders(msg: AsyncMessage): Record<string, string> {
  const traceparent = headerTraceparent(msg);
  return traceparent === undefined ? {} : { [TRACEPARENT_HEADER]: traceparent };
}

function headerAttempt(msg: AsyncMessage): number {
  const value: unknown = msg.headers?.[ATTEMPT_HEADER];
  const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

function decodeBody(body: unknown): unknown {
  // rabbitmq-client already parses `application/json` bodies; anything else arrives as a Buffer or string.
  if (Buffer.isBuffer(body)) return JSON.parse(body.toString('utf8'));
  if (typeof body === 'string') return JSON.parse(body);
  return body;
}

export class RabbitConsumer implements ConsumerHandle {
  readonly queue: string;
  onClosed: (() => void) | undefined;
  private readonly brokerQueue: string;
  private readonly dlq: string;
  private readonly consumer: Consumer;
  /** Republishes retries and dead letters, on the publish connection, with confirms. */
  private readonly republisher: Publisher;
  private closing: Promise<void> | undefined;
  private readonly declarations: Array<{ queue: string; durable: boolean; arguments: Record<string, unknown> }>;

  constructor(
    private readonly log: ConsumerTopology,
    consumeConnection: Connection,
    private readonly publishConnection: Connection,
    private readonly spec: NormalizedConsumerSpec,
    private readonly handler: EventHandler,
    private readonly logger: Logger | undefined,
  ) {
    this.queue = spec.queue;
    this.brokerQueue = log.queueName(spec.queue);
    this.dlq = log.deadLetterQueueName(spec.queue);
    const workQueue = { queue: this.brokerQueue, durable: true, arguments: log.queueArguments() };
    const sideQueues = [
      { queue: this.dlq, durable: true, arguments: log.queueArguments() },
      ...retryDelays(spec).map((delay) => ({
        queue: log.retryQueueName(spec.queue, delay),
        durable: true,
        arguments: log.queueArguments({
          'x-message-ttl': delay,
          // Expired retries go back to the work queue through the default exchange.
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': this.brokerQueue,
        }),
      })),
    ];
    this.declarations = [workQueue, ...sideQueues];
    this.republisher = publishConnection.createPublisher({
      confirm: true,
      // The work queue too: an expiring retry must find it even if it was deleted meanwhile.
      queues: [workQueue, ...sideQueues],
    });
    // Acks leave in `multiple` acks (ack-batcher.ts): the broker settles a batch per frame.
    this.consumer = batchingAcks(consumeConnection, spec.prefetch).createConsumer(
      {
        queue: this.brokerQueue,
        queueOptions: workQueue,
        qos: { prefetchCount: spec.prefetch },
        concurrency: spec.prefetch,
        exchanges: [log.exchangeDeclaration()],
        queueBindings: spec.bindings.map((routingKey) => ({ queue: this.brokerQueue, exchange: log.exchange, routingKey })),
        // A failing republish throws: the original goes back to the queue (at least once, never lost).
        requeue: true,
        lazy: true,
      },
      (msg) => this.onMessage(msg),
    );
    this.consumer.on('error', (err: unknown) => this.logger?.warn({ err, queue: this.queue }, 'consumer error'));
  }

  /** Declare the side queues (so a bad argument fails here, loudly) and wait for the consumer to be ready. */
  async open(timeoutMs: number): Promise<void> {
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.consumer.off('ready', onReady);
        reject(new NerveError(ErrorCode.Unavailable, `consumer ${this.queue} not ready within ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.consumer.once('ready', onReady);
    });
    // Side queues now, not at the first retry: a bad argument (say, a queue type change) fails here, loudly.
    for (const declaration of this.declarations) await this.publishConnection.queueDeclare(declaration);
    this.consumer.start();
    await ready;
  }

  private async onMessage(msg: AsyncMessage): Promise<ConsumerStatus> {
    const attempt = headerAttempt(msg);
    let event: LifecycleEvent;
    try {
      event = parseEvent(decodeBody(msg.body));
    } catch (err) {
      await this.deadLetter(msg.body, attempt, 'invalid', err);
      return ConsumerStatus.ACK;
    }
    let outcome: HandlerOutcome;
    let failure: unknown;
    try {
      const traceparent = headerTraceparent(msg);
      outcome = await this.handler(event, { attempt, queue: this.queue, ...(traceparent === undefined ? {} : { traceparent }) });
      if (outcome !== 'ack' && outcome !== 'retry' && outcome !== 'dead_letter') outcome = 'retry';
    } catch (err) {
      failure = err;
      outcome = 'retry';
      this.logger?.warn({ err, queue: this.queue, event: event.id, attempt }, 'event handler failed');
    }
    if (outcome === 'ack') return ConsumerStatus.ACK;
    if (outcome === 'retry' && attempt < this.spec.maxAttempts) {
      const delay = retryDelay(this.spec, attempt);
      await this.republisher.send(
        {
          exchange: '',
          routingKey: this.log.retryQueueName(this.queue, delay),
          durable: true,
          contentType: 'application/json',
          messageId: event.id,
          type: event.type,
          headers: { ...traceHeaders(msg), [ATTEMPT_HEADER]: attempt + 1 },
        },
        Buffer.from(JSON.stringify(event)),
      );
      return ConsumerStatus.ACK;
    }
    await this.deadLetter(event, attempt, outcome === 'dead_letter' ? 'dead_letter' : 'max_attempts', failure);
    return ConsumerStatus.ACK;
  }

  private async deadLetter(body: unknown, attempt: number, reason: DeadLetterReason, error: unknown): Promise<void> {
    const message = error === undefined ? undefined : errorText(error);
    this.logger?.error({ queue: this.queue, attempt, reason, error: message }, 'event dead-lettered');
    const payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    await this.republisher.send(
      {
        exchange: '',
        routingKey: this.dlq,
        durable: true,
        contentType: 'application/json',
        headers: {
          [ATTEMPT_HEADER]: attempt,
          [REASON_HEADER]: reason,
          'x-nerve-queue': this.queue,
          ...(message === undefined ? {} : { [ERROR_HEADER]: message.slice(0, 500) }),
        },
      },
      payload,
    );
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // Lets handlers in flight settle (ack or republish) before the channel closes.
      await closeWithin(() => this.consumer.close(), 30_000);
      await closeWithin(() => this.republisher.close(), 2000);
      this.onClosed?.();
    })();
    return this.closing;
  }
}
