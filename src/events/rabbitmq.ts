/**
 * The cold lane on RabbitMQ (rabbitmq-client v5), modelled on
 * node-rabbitmq-client: a publisher with confirms behind a bounded outbox,
 * consumers (rabbitmq-consumer.ts) whose topology is re-declared after every
 * reconnect. Topology and retries: docs/events.md, "Routing and topology".
 * Publishing and consuming use separate connections: when the broker blocks
 * publishers (`connection.blocked`), acks must still flow or queues never drain.
 */
import type { Logger } from 'pino';
import { AMQPChannelError, AMQPConnectionError, Connection, type ConnectionOptions, type Publisher } from 'rabbitmq-client';
import type { LaneHealth } from '../lanes.js';
import { ConfigError } from '../config/errors.js';
import { integer, nameComponent } from '../config/validate.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ConsumerHandle, ConsumerSpec, EventHandler, EventLog, LifecycleEvent, PublishOptions } from './event-log.js';
import { Outbox } from './outbox.js';
import { normalizeConsumerSpec } from './retry.js';
import { RabbitConsumer, TRACEPARENT_HEADER, type ConsumerTopology } from './rabbitmq-consumer.js';
import { closeWithin } from '../close-within.js';
import { errorText } from '../errors.js';
import { LANE_SOCKET_OPTIONS, TurnCork } from './amqp-cork.js';

/** An event waiting in the outbox, with what travels beside it. */
interface Outgoing {
  event: LifecycleEvent;
  traceparent: string | undefined;
}

export interface RabbitEventLogOptions {
  /** AMQP URL, e.g. `amqp://guest:guest@127.0.0.1:5672`. Required. */
  url: string;
  /** Environment name, first part of every exchange and queue name. Default `dev`. */
  env?: string;
  /** Service name, second part of every exchange and queue name. Default `nerve`. */
  service?: string;
  /** Events accepted but not yet confirmed, at most; beyond, `publish` rejects with `unavailable`. Default 10000. */
  outboxLimit?: number;
  /** Publishes awaiting a broker confirm at once. Default 256. */
  maxInFlight?: number;
  /** How long `close()` waits for the outbox to empty before rejecting what is left. Default 5000 ms. */
  closeTimeoutMs?: number;
  /** How long `start()` waits for the first connection; 0 = do not wait (events wait in the outbox). Default 10000 ms. */
  startTimeoutMs?: number;
  /** Declare consumer, retry and dead-letter queues as quorum queues (replicated; needs RabbitMQ ≥ 3.10). Default false. */
  quorumQueues?: boolean;
  /** Reconnect backoff step and cap, ms (rabbitmq-client `retryLow` / `retryHigh`). Default 1000 / 30000. */
  reconnectLowMs?: number;
  reconnectHighMs?: number;
  /** Heartbeat, seconds; a dead TCP peer is noticed after two missed beats. Default 30. */
  heartbeatSeconds?: number;
  /** An event the broker has not confirmed for this long makes the lane unhealthy (/readyz names it), ms. Default 5000. */
  confirmOverdueMs?: number;
  /** Optional pino logger. Default: silent. */
  logger?: Logger;
}

type State = 'idle' | 'running' | 'closing' | 'closed';

export class RabbitEventLog implements EventLog, ConsumerTopology {
  readonly driver = 'rabbitmq';
  /** The topic exchange every event is published to: `{env}.{service}.events`. */
  readonly exchange: string;
  private readonly prefix: string;
  private readonly options: Required<Omit<RabbitEventLogOptions, 'logger'>>;
  private readonly logger: Logger | undefined;
  private readonly publishConnection: Connection;
  private consumeConnection: Connection | undefined;
  private readonly publisher: Publisher;
  /** Coalesces one turn's publishes into one socket write (amqp-cork.ts). */
  private readonly publishCork: TurnCork;
  private readonly outbox: Outbox<Outgoing>;
  private readonly consumers = new Set<RabbitConsumer>();
  private state: State = 'idle';
  private blockedReason: string | undefined;
  private lastError: string | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: RabbitEventLogOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new ConfigError('amqpUrl', 'an amqp:// or amqps:// URL', options.url);
    }
    if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') throw new ConfigError('amqpUrl', 'an amqp:// or amqps:// URL', options.url);
    const env = options.env ?? 'dev';
    const service = options.service ?? 'nerve';
    nameComponent('env', env);
    nameComponent('service', service);
    this.options = {
      url: options.url,
      env,
      service,
      outboxLimit: integer('outboxLimit', options.outboxLimit ?? 10_000, 0, 10_000_000),
      maxInFlight: integer('maxInFlight', options.maxInFlight ?? 256, 0, 65_535) || 1,
      closeTimeoutMs: integer('closeTimeoutMs', options.closeTimeoutMs ?? 5000, 0, 600_000),
      startTimeoutMs: integer('startTimeoutMs', options.startTimeoutMs ?? 10_000, 0, 600_000),
      quorumQueues: options.quorumQueues ?? false,
      reconnectLowMs: integer('reconnectLowMs', options.reconnectLowMs ?? 1000, 0, 600_000),
      reconnectHighMs: integer('reconnectHighMs', options.reconnectHighMs ?? 30_000, 0, 600_000),
      heartbeatSeconds: integer('heartbeatSeconds', options.heartbeatSeconds ?? 30, 0, 3600),
      confirmOverdueMs: integer('confirmOverdueMs', options.confirmOverdueMs ?? 5000, 0, 600_000),
    };
    if (this.options.outboxLimit < 1) throw new ConfigError('outboxLimit', 'an integer from 1 to 10000000', 0);
    this.logger = options.logger?.child({ lane: 'events', driver: 'rabbitmq' });
    this.prefix = `${env}.${service}`;
    this.exchange = `${this.prefix}.events`;

    this.publishConnection = this.connect('publish');
    this.publishConnection.on('connection.blocked', (reason: string) => {
      this.blockedReason = reason;
      this.logger?.warn({ reason }, 'broker blocked publishing; events wait in the outbox');
    });
    this.publishConnection.on('connection.unblocked', () => {
      this.blockedReason = undefined;
      this.logger?.info('broker unblocked publishing');
      this.outbox.pump();
    });
    this.publishConnection.on('connection', () => {
      this.blockedReason = undefined;
      this.outbox.pump();
    });
    this.publisher = this.publishConnection.createPublisher({
      confirm: true,
      // Re-declared by rabbitmq-client on every new channel, i.e. after every reconnect.
      exchanges: [this.exchangeDeclaration()],
    });
    this.publishCork = new TurnCork(this.publishConnection);
    // Publisher channel errors surface on the connection's `error` listener (rabbitmq-client forwards them).
    const cork = this.publishCork;
    this.outbox = new Outbox<Outgoing>({
      limit: this.options.outboxLimit,
      maxInFlight: this.options.maxInFlight,
      isReady: () => cork.ready(),
      isTransient: (error) => error instanceof AMQPConnectionError || (error instanceof AMQPChannelError && error.code === 'CH_CLOSE') || !cork.ready(),
      send: ({ event, traceparent }) => {
        this.publishCork.hold();
        return this.publisher.send(
          {
            exchange: this.exchange,
            routingKey: event.type,
            durable: true, // deliveryMode 2: persisted by the broker
            contentType: 'application/json',
            messageId: event.id,
            type: event.type,
            timestamp: Math.floor(event.ts / 1000),
            ...(traceparent === undefined ? {} : { headers: { [TRACEPARENT_HEADER]: traceparent } }),
          },
          Buffer.from(JSON.stringify(event)),
        );
      },
      ...(this.logger ? { logger: this.logger } : {}),
    });
  }

  private connect(role: 'publish' | 'consume'): Connection {
    const props: ConnectionOptions = {
      url: this.options.url,
      connectionName: `${this.prefix}.${role}`,
      retryLow: this.options.reconnectLowMs,
      retryHigh: this.options.reconnectHighMs,
      heartbeat: this.options.heartbeatSeconds,
      // Writes are coalesced per turn (amqp-cork.ts), so Nagle has nothing left to merge and would only add delay.
      noDelay: true,
      // The broker's usual frame_max (negotiated down if it is lower): an event of up to 128 KiB is one body frame.
      frameMax: 131_072,
      // Not a full connect option set: rabbitmq-client adds host and port.
      socket: LANE_SOCKET_OPTIONS as unknown as ConnectionOptions['socket'],
    };
    const connection = new Connection(props);
    // rabbitmq-client reconnects on its own; without a listener an `error` event would crash the process.
    connection.on('error', (err: unknown) => this.noteError(`${role} connection`, err));
    connection.on('connection', () => {
      this.lastError = undefined;
      this.logger?.info({ role }, 'broker connected');
    });
    return connection;
  }

  private noteError(source: string, err: unknown): void {
    this.lastError = `${source}: ${errorText(err)}`;
    this.logger?.warn({ err, source }, 'event lane error');
  }

  exchangeDeclaration(): { exchange: string; type: 'topic'; durable: true } {
    return { exchange: this.exchange, type: 'topic', durable: true };
  }

  /** Full broker name of a consumer's queue. */
  queueName(queue: string): string {
    return `${this.prefix}.${queue}`;
  }

  /** Dead-letter queue of a consumer. */
  deadLetterQueueName(queue: string): string {
    return `${this.queueName(queue)}.dlq`;
  }

  retryQueueName(queue: string, delayMs: number): string {
    return `${this.queueName(queue)}.retry.${delayMs}`;
  }

  /**
   * Events ready in a consumer's queue (not delivered, not waiting for a
   * retry), by a passive declare on the publishing connection; `undefined`
   * while the queue does not exist yet. Rejects while the broker is away.
   * For worker metrics (`nerve_worker_queue_depth`).
   */
  async queueDepth(queue: string): Promise<number | undefined> {
    if (this.state !== 'running') return undefined;
    try {
      return (await this.publishConnection.queueDeclare({ queue: this.queueName(queue), passive: true })).messageCount;
    } catch (err) {
      if (err instanceof AMQPChannelError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    this.state = 'running';
    if (this.options.startTimeoutMs === 0) return;
    try {
      // disableAutoClose: a slow broker must not close our connection; it keeps retrying.
      await this.publishConnection.onConnect(this.options.startTimeoutMs, true);
      await this.publishConnection.exchangeDeclare(this.exchangeDeclaration());
    } catch (err) {
      throw new NerveError(ErrorCode.Unavailable, `event lane: broker not reachable within ${this.options.startTimeoutMs} ms`, { cause: err });
    }
  }

  publish(event: LifecycleEvent, options?: PublishOptions): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') {
      return Promise.reject(new NerveError(ErrorCode.Unavailable, 'event log is closing'));
    }
    return this.outbox.enqueue({ event, traceparent: options?.traceparent });
  }

  async consume(spec: ConsumerSpec, handler: EventHandler): Promise<ConsumerHandle> {
    if (this.state === 'closing' || this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'event log is closing');
    const normalized = normalizeConsumerSpec(spec);
    this.consumeConnection ??= this.connect('consume');
    const consumer = new RabbitConsumer(this, this.consumeConnection, this.publishConnection, normalized, handler, this.logger);
    this.consumers.add(consumer);
    consumer.onClosed = () => this.consumers.delete(consumer);
    try {
      await consumer.open(Math.max(this.options.startTimeoutMs, 1000));
    } catch (err) {
      await consumer.close();
      throw err;
    }
    return consumer;
  }

  queueArguments(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return this.options.quorumQueues ? { 'x-queue-type': 'quorum', ...extra } : extra;
  }

  outboxDepth(): number {
    return this.outbox.depth();
  }

  health(): LaneHealth {
    const base = { lane: 'events', driver: this.driver };
    if (this.state === 'closed') return { ...base, ok: false, detail: 'closed' };
    const depth = this.outbox.depth();
    if (depth >= this.outbox.limit) return { ...base, ok: false, detail: `outbox full (${depth}/${this.outbox.limit})` };
    if (this.blockedReason !== undefined) return { ...base, ok: false, detail: `broker blocked publishing: ${this.blockedReason}; outbox ${depth}` };
    if (!this.publishCork.ready()) {
      return { ...base, ok: false, detail: `broker unreachable${this.lastError ? ` (${this.lastError})` : ''}; outbox ${depth}` };
    }
    // The outbox's sends in flight are the publishes waiting for their broker confirm.
    const waited = this.outbox.oldestInFlightMs();
    // A broker that takes the bytes but stopped confirming (stalled, partitioned before heartbeats notice).
    if (waited > this.options.confirmOverdueMs) return { ...base, ok: false, detail: `broker has not confirmed an event for ${waited} ms; outbox ${depth}` };
    return depth > 0 ? { ...base, ok: true, detail: `outbox ${depth}` } : { ...base, ok: true };
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.state = 'closing';
    // Consumers first: their in-flight handlers may still republish retries on the publish connection.
    await Promise.all([...this.consumers].map((c) => c.close()));
    const drained = await this.outbox.drain(this.options.closeTimeoutMs);
    if (!drained) {
      const rejected = this.outbox.stop();
      // Never silent: every caller's publish rejects, and the count is logged.
      this.logger?.error({ rejected, timeoutMs: this.options.closeTimeoutMs }, 'event log closed with unconfirmed events; their publishes were rejected');
    }
    this.outbox.stop();
    await closeWithin(() => this.publisher.close(), 2000);
    await closeWithin(
      () => this.publishConnection.close(),
      2000,
      () => this.publishConnection.unsafeDestroy(),
    );
    if (this.consumeConnection) {
      const connection = this.consumeConnection;
      await closeWithin(
        () => connection.close(),
        2000,
        () => connection.unsafeDestroy(),
      );
    }
    this.state = 'closed';
  }
}
