/**
 * The hot lane on RabbitMQ, for deployments without Redis (project issue 6):
 * one exclusive queue per node on a direct exchange, and a binding per held
 * channel, so bindings are where a user or room is present (no user→node
 * table). After a reconnect, a closed consumer channel or a deaf canary the
 * node declares a new queue, binds everything held, and reports it through
 * `onResubscribed`. Topology, ordering and failure answers:
 * docs/architecture.md, "Cross-node: RabbitMQ routing".
 */
import { randomBytes } from 'node:crypto';
import { Connection, type AsyncMessage, type Channel, type ConnectionOptions } from 'rabbitmq-client';
import type { LaneHealth } from '../lanes.js';
import { RefCountedBus } from './base.js';
import type { BusEnvelope } from './bus.js';
import { Canary } from './canary.js';
import { fullJitter } from '../backoff.js';
import { errorText } from '../errors.js';
import { canaryBytes, encodeOutgoing, unavailable, type RedisBusStats } from './wire.js';
import { silentLogger, type LaneLogger } from '../log-types.js';
import { takeWireMessage, type BusIntake } from './intake.js';
import { normalizeRabbitBusOptions, type NormalizedOptions, type RabbitBusOptions } from './rabbitmq-options.js';
import { ConfirmedPublisher } from './rabbitmq-publisher.js';
import { hotExchangeName, nodeQueuePrefix, routingKeyFor } from './rabbitmq-routing.js';
import { closeWithin } from '../close-within.js';

interface Links {
  /** Publishes (with confirms); never consumes, so a blocked publisher cannot stall deliveries. */
  pub: Connection;
  /** Owns the node's exclusive queue, its bindings and its consumer; absent when publish-only. */
  sub: Connection | undefined;
  publisher: ConfirmedPublisher;
}

/** What the node's queue currently is: the consuming channel, the queue, and what is bound on it. */
interface LiveQueue {
  channel: Channel;
  queue: string;
  /** routing key → bus channel, for every binding made on this queue. */
  bound: Map<string, string>;
}

type State = 'idle' | 'starting' | 'running' | 'closed';

export class RabbitBus extends RefCountedBus {
  readonly driver = 'rabbitmq';
  /** The direct exchange every node publishes to. */
  readonly exchange: string;
  /** Every queue of this node starts with it (tests and operators find them by it). */
  readonly queuePrefix: string;
  private readonly options: NormalizedOptions;
  private readonly log: LaneLogger;
  private state: State = 'idle';
  /** Created by `start` (the bus owns its connections), closed by `close`. */
  private links: Links | undefined;
  private live: LiveQueue | undefined;
  /** Setups run one after another; a request during one runs another after it. */
  private setupChain: Promise<void> = Promise.resolve();
  private setupQueued = false;
  private setupFailures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Whether a queue was ever live: a later setup is a resubscribe, reported to the node. */
  private everLive = false;
  private readonly canary: Canary;
  private readonly canaryChannel: string;
  private deaf = false;
  private lastError: string | undefined;
  private readonly counters: RedisBusStats = { published: 0, received: 0, publishFailures: 0, decodeErrors: 0, reconnects: 0, canaryFailures: 0 };

  constructor(options: RabbitBusOptions) {
    super();
    this.options = normalizeRabbitBusOptions(options);
    this.log = options.logger ?? silentLogger;
    this.exchange = hotExchangeName(this.options.env, this.options.service);
    this.queuePrefix = nodeQueuePrefix(this.options.env, this.options.service, this.options.nodeId);
    // `#` never occurs in a ChannelNamer name, so no room or user channel can be this one.
    this.canaryChannel = `#canary:${this.queuePrefix}`;
    this.canary = new Canary({
      intervalMs: this.options.canaryIntervalMs,
      timeoutMs: this.options.canaryTimeoutMs,
      channels: () => [this.canaryChannel],
      canProbe: () => this.state === 'running' && this.live !== undefined && this.links?.pub.ready === true,
      send: (channel, id) => this.publishBytes(channel, canaryBytes(this.options.nodeId, id)),
      onDeaf: () => {
        this.counters.canaryFailures += 1;
        this.deaf = true;
        this.log.warn({ driver: this.driver, queue: this.live?.queue }, 'bus canary did not come back; declaring a new queue');
        void this.live?.channel.close().catch(() => {});
      },
      onHealthy: () => {
        if (this.deaf) this.log.info({ driver: this.driver }, 'bus canary is back');
        this.deaf = false;
      },
    });
  }

  private openLinks(): Links {
    const pub = this.connect('pub');
    const sub = this.options.publishOnly ? undefined : this.connect('sub');
    const publisher = new ConfirmedPublisher(pub, this.exchangeDeclaration(), this.options, this.counters);
    sub?.on('connection', () => {
      if (this.state === 'running') {
        this.counters.reconnects += 1;
        this.requestSetup();
      }
    });
    return { pub, sub, publisher };
  }

  private connect(role: 'pub' | 'sub'): Connection {
    const props: ConnectionOptions = {
      url: this.options.url,
      connectionName: `nerve-bus-${role}-${this.options.nodeId}`,
      retryLow: this.options.reconnectLowMs,
      retryHigh: this.options.reconnectHighMs,
      heartbeat: this.options.heartbeatSeconds,
      // Operations on a connection that is down wait at most this long (ours check `ready` first).
      acquireTimeout: this.options.publishTimeoutMs,
    };
    const connection = new Connection(props);
    // rabbitmq-client reconnects by itself; without a listener an `error` event would crash the process.
    connection.on('error', (err: unknown) => {
      if (this.state === 'closed') return;
      this.lastError = `${role}: ${errorText(err)}`;
      this.log.warn({ driver: this.driver, role, err: errorText(err) }, 'rabbitmq bus connection error');
    });
    return connection;
  }

  exchangeDeclaration(): { exchange: string; type: 'direct'; durable: true } {
    return { exchange: this.exchange, type: 'direct', durable: true };
  }

  // ------------------------------------------------------------ lifecycle

  protected async open(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`rabbitmq bus cannot start: it is ${this.state}`);
    this.state = 'starting';
    const links = this.openLinks();
    this.links = links;
    try {
      // disableAutoClose: on a timeout the connections keep retrying; close() ends them.
      await Promise.all([links.pub.onConnect(this.options.startTimeoutMs, true), links.sub?.onConnect(this.options.startTimeoutMs, true)]);
      await links.pub.exchangeDeclare(this.exchangeDeclaration());
      if (this.state !== 'starting') throw new Error('closed while starting');
      this.state = 'running';
      if (this.options.publishOnly) {
        this.log.info({ driver: this.driver, nodeId: this.options.nodeId }, 'bus connected (publish only)');
        return;
      }
      this.requestSetup();
      await this.setupChain;
      if (!this.live) throw new Error(this.lastError ?? 'the node queue could not be declared');
    } catch (error) {
      await this.shutdown();
      throw unavailable(`rabbitmq bus could not start: ${errorText(error)}`, error);
    }
    this.canary.start();
    this.log.info({ driver: this.driver, nodeId: this.options.nodeId, queue: this.live.queue }, 'bus connected');
  }

  private shutdownDone: Promise<void> | undefined;

  protected shutdown(): Promise<void> {
    this.shutdownDone ??= this.closeEverything();
    return this.shutdownDone;
  }

  private async closeEverything(): Promise<void> {
    this.state = 'closed';
    this.canary.stop();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const live = this.live;
    this.live = undefined;
    const links = this.links;
    if (!links) return;
    await closeWithin(() => links.publisher.close(), 2000);
    if (live) await closeWithin(() => live.channel.close(), 2000);
    const connections = links.sub ? [links.pub, links.sub] : [links.pub];
    await Promise.all(
      connections.map((connection) =>
        closeWithin(
          () => connection.close(),
          2000,
          () => connection.unsafeDestroy(),
        ),
      ),
    );
  }

  // ------------------------------------------------------------ the node's queue

  /** Declare a fresh queue and bind everything held, after whatever setup is running. */
  private requestSetup(): void {
    if (this.setupQueued) return;
    this.setupQueued = true;
    this.setupChain = this.setupChain.then(async () => {
      this.setupQueued = false;
      if (this.state !== 'running' || !this.links?.sub?.ready) return;
      try {
        await this.setup();
        this.setupFailures = 0;
      } catch (error) {
        this.lastError = `queue setup: ${errorText(error)}`;
        this.log.warn({ driver: this.driver, err: errorText(error) }, 'rabbitmq bus could not set up its queue; retrying');
        // A lost connection retries on its `connection` event; a channel error (the connection is up) retries here.
        if (this.state === 'running' && this.links?.sub?.ready) {
          this.setupFailures += 1;
          this.retryTimer = setTimeout(() => this.requestSetup(), fullJitter(this.setupFailures, this.options.reconnectLowMs, this.options.reconnectHighMs));
          this.retryTimer.unref();
        }
      }
    });
  }

  private async setup(): Promise<void> {
    // The previous queue goes with its channel (exclusive, auto-delete): no stale binding keeps counting as a receiver.
    const previous = this.live;
    this.live = undefined;
    if (previous) await previous.channel.close().catch(() => {});

    const sub = this.links?.sub;
    if (!sub) return;
    const channel = await sub.acquire();
    try {
      const queue = `${this.queuePrefix}${randomBytes(4).toString('hex')}`;
      await channel.exchangeDeclare(this.exchangeDeclaration());
      await channel.queueDeclare({
        queue,
        exclusive: true,
        autoDelete: true,
        durable: false,
        arguments: { 'x-max-length': this.options.maxQueueLength, 'x-overflow': 'drop-head' },
      });
      const wanted = [...this.wantedChannels(), this.canaryChannel];
      const bound = new Map<string, string>();
      for (const name of wanted) {
        const key = routingKeyFor(name);
        await channel.queueBind({ queue, exchange: this.exchange, routingKey: key });
        bound.set(key, name);
      }
      const live: LiveQueue = { channel, queue, bound };
      channel.on('close', () => this.onChannelClosed(live));
      // A consumer the broker cancels (queue deleted by an operator) leaves the node deaf: start over.
      channel.on('basic.cancel', () => void channel.close().catch(() => {}));
      await channel.basicConsume({ queue, noAck: true, exclusive: true }, (message) => this.onDelivery(live, message));
      if (this.state !== 'running') {
        await channel.close().catch(() => {});
        return;
      }
      this.live = live;
      this.lastError = undefined;
      // Released while we were binding: unbind, so the broker's view matches the reference counts.
      const still = new Set([...this.wantedChannels(), this.canaryChannel]);
      for (const [key, name] of bound) {
        if (still.has(name)) continue;
        bound.delete(key);
        await channel.queueUnbind({ queue, exchange: this.exchange, routingKey: key }).catch(() => {});
      }
      this.log.info({ driver: this.driver, queue, channels: bound.size - 1 }, 'rabbitmq bus queue declared and bound');
      if (this.everLive) this.reportResubscribed(wanted.filter((name) => name !== this.canaryChannel));
      this.everLive = true;
    } catch (error) {
      await channel.close().catch(() => {});
      throw error;
    }
  }

  private onChannelClosed(live: LiveQueue): void {
    if (this.live !== live) return;
    this.live = undefined;
    if (this.state !== 'running') return;
    this.log.warn({ driver: this.driver, queue: live.queue }, 'rabbitmq bus consumer channel closed');
    // With the connection up, start over now; otherwise the `connection` event will.
    if (this.links?.sub?.ready) this.requestSetup();
  }

  protected async subscribeChannel(channel: string): Promise<void> {
    if (this.options.publishOnly) throw new TypeError(`a publish-only rabbitmq bus cannot bind ${channel}`);
    const live = this.live;
    if (this.state !== 'running' || !live) throw unavailable(`rabbitmq bus cannot bind ${channel}: ${this.problem() ?? 'no queue'}`);
    const key = routingKeyFor(channel);
    live.bound.set(key, channel);
    try {
      await live.channel.queueBind({ queue: live.queue, exchange: this.exchange, routingKey: key });
    } catch (error) {
      live.bound.delete(key);
      throw unavailable(`rabbitmq bus bind of ${channel} failed: ${errorText(error)}`, error);
    }
    // A setup that ran meanwhile bound every held channel on its new queue, this one included.
    if (this.live !== live && !this.live?.bound.has(key)) throw unavailable(`rabbitmq bus lost its queue while binding ${channel}`);
  }

  protected async unsubscribeChannel(channel: string): Promise<void> {
    const live = this.live;
    // No queue: nothing is bound (the next setup binds only held channels).
    if (!live) return;
    const key = routingKeyFor(channel);
    live.bound.delete(key);
    try {
      await live.channel.queueUnbind({ queue: live.queue, exchange: this.exchange, routingKey: key });
    } catch (error) {
      // The channel is going away, and the queue with it.
      this.log.debug({ channel, err: errorText(error) }, 'rabbitmq bus unbind failed; the queue is going away');
    }
  }

  /** Every delivery on the node's queue. Never throws. */
  private onDelivery(live: LiveQueue, message: AsyncMessage): void {
    if (this.state !== 'running' || this.live !== live) return;
    // Released meanwhile (unbound, but already queued): nobody here wants it.
    const channel = live.bound.get(message.routingKey);
    if (channel === undefined) return;
    this.intake ??= { counters: this.counters, canary: this.canary, log: this.log };
    takeWireMessage(this.intake, this.handler, channel, message.body);
  }

  private intake: BusIntake | undefined;

  // ------------------------------------------------------------ publish

  /** Resolves with 0 when no node is bound to `channel`, 1 when at least one is (rabbitmq-publisher.ts). */
  async publish(channel: string, envelope: BusEnvelope): Promise<number> {
    return this.publishBytes(channel, encodeOutgoing(this.counters, envelope));
  }

  private publishBytes(channel: string, bytes: Buffer): Promise<number> {
    const links = this.links;
    if (this.state !== 'running' || !links?.pub.ready) {
      this.counters.publishFailures += 1;
      return Promise.reject(
        unavailable(
          `rabbitmq bus cannot publish: ${this.state !== 'running' ? `bus is ${this.state}` : `publishing connection is down${this.lastError ? ` (${this.lastError})` : ''}`}`,
        ),
      );
    }
    return links.publisher.send(this.exchange, routingKeyFor(channel), bytes);
  }

  // ------------------------------------------------------------ status

  private problem(): string | undefined {
    if (this.state !== 'running') return `rabbitmq bus is ${this.state}`;
    const problems: string[] = [];
    if (!this.links?.pub.ready) problems.push('publishing connection down');
    else if (this.links.publisher.confirmOverdue !== undefined) problems.push(`publisher: ${this.links.publisher.confirmOverdue}`);
    if (this.options.publishOnly) {
      // No consuming side to check.
    } else if (!this.links?.sub?.ready) problems.push('consuming connection down');
    else if (!this.live) problems.push('node queue being declared');
    if (this.deaf) problems.push('canary did not come back; queue being declared again');
    if (problems.length === 0) return undefined;
    return `rabbitmq ${problems.join(', ')}${this.lastError ? ` (${this.lastError})` : ''}`;
  }

  health(): LaneHealth {
    const problem = this.problem();
    return problem === undefined ? { lane: 'bus', driver: this.driver, ok: true } : { lane: 'bus', driver: this.driver, ok: false, detail: problem };
  }

  /** Counters for the node's metrics (same shape as the Redis bus); monotonic since construction. */
  stats(): RedisBusStats {
    return { ...this.counters };
  }

  /** The node's current queue name, or undefined while none is live. */
  queueName(): string | undefined {
    return this.live?.queue;
  }

  /** Run one canary round now; resolves with the channels found deaf. */
  probeNow(): Promise<string[]> {
    return this.canary.round();
  }
}
