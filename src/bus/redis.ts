/**
 * Redis Pub/Sub hot lane: one publisher and one subscriber connection per
 * process, owned by the bus. A channel is subscribed while referenced (the
 * SUBSCRIBEs of one turn as one command, each acquire resolved once
 * confirmed); the publisher's socket is corked for the rest of the tick
 * (docs/architecture.md, "Writing to sockets"). PUBLISH answers how many
 * nodes got the message. After a reconnect the subscriber resubscribes from
 * the reference counts and reports the channels (`onResubscribed`); a canary
 * catches a deaf one. `createRedisBus(options)` picks this driver or the sharded one.
 */
import { Redis } from 'ioredis';
import { TickBatch } from '../tick-batch.js';
import { WriteBatch } from '../write-batch.js';
import type { Bus } from './bus.js';
import { errorText } from '../errors.js';
import { RedisBusCore } from './redis-core.js';
import { connectionOptions, type RedisBusOptions } from './redis-options.js';
import { ShardedRedisBus } from './redis-sharded.js';

/** Corks the publisher's socket for the rest of the tick (see the header). */
const publishWrites = new WriteBatch();

/** Channels per SUBSCRIBE command when resubscribing after a reconnect, and per batched SUBSCRIBE / UNSUBSCRIBE. */
const RESUBSCRIBE_BATCH = 500;

export class RedisBus extends RedisBusCore {
  readonly driver: string = 'redis';
  private publisher: Redis | undefined;
  private subscriber: Redis | undefined;
  /** `:` never occurs inside an escaped component, so this cannot collide with a room or user channel. */
  private readonly canaryChannel: string;

  constructor(options: RedisBusOptions) {
    super({ ...options, sharded: false });
    this.canaryChannel = `${this.options.namer.node(this.options.nodeId)}:canary`;
  }

  protected async connect(): Promise<void> {
    const url = this.options.url;
    if (url === undefined) throw new TypeError('RedisBus needs option url');
    const publisher = new Redis(url, connectionOptions(this.options, 'pub'));
    const subscriber = new Redis(url, connectionOptions(this.options, 'sub'));
    this.publisher = publisher;
    this.subscriber = subscriber;
    this.watch(publisher, 'publisher', () => {});
    this.watch(subscriber, 'subscriber', () => void this.resubscribe(subscriber));
    subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onWireMessage(channel, message));
    await Promise.all([
      this.waitReady(publisher, this.options.startTimeoutMs, 'redis publisher'),
      this.waitReady(subscriber, this.options.startTimeoutMs, 'redis subscriber'),
    ]);
    await subscriber.subscribe(this.canaryChannel);
    // Not awaited: a slow or refused CONFIG must not hold the start.
    void this.checkOutputBuffer(publisher);
  }

  /**
   * After a reconnect the server has forgotten every subscription. Each
   * batch is filtered against the reference counts just before it is sent,
   * so a channel released meanwhile is not resurrected.
   */
  private async resubscribe(subscriber: Redis): Promise<void> {
    const wanted = this.allWantedChannels();
    try {
      for (let i = 0; i < wanted.length; i += RESUBSCRIBE_BATCH) {
        const still = new Set(this.allWantedChannels());
        const batch = wanted.slice(i, i + RESUBSCRIBE_BATCH).filter((channel) => still.has(channel));
        if (batch.length > 0) await subscriber.subscribe(...batch);
      }
      this.log.info({ driver: this.driver, channels: wanted.length }, 'redis bus resubscribed');
      // Live again, but whatever was published while the connection was down
      // never reached us: tell the node, which re-reads what it can (chat).
      // A subscriber replaced meanwhile reports on its own ready.
      if (this.state === 'running' && this.subscriber === subscriber) this.reportResubscribed(wanted);
    } catch (error) {
      if (this.state !== 'running') return;
      // Try again from scratch on a fresh connection rather than run half-subscribed.
      this.log.warn({ driver: this.driver, err: errorText(error) }, 'redis bus resubscribe failed; reconnecting');
      this.replace(subscriber, `resubscribe failed: ${errorText(error)}`);
    }
  }

  /**
   * One SUBSCRIBE for every channel asked for in a turn (at `setImmediate`,
   * so the whole I/O phase's connects are in it). It resolves once the server
   * confirmed each of them (ioredis counts the confirmations), so every
   * `acquire` of the batch still resolves only when its channel is live. A
   * failure fails the whole batch.
   */
  private readonly subscribes = new TickBatch<string, undefined>({
    max: RESUBSCRIBE_BATCH,
    schedule: setImmediate,
    flush: async (channels) => {
      const subscriber = this.subscriber;
      if (this.state !== 'running' || !subscriber || subscriber.status !== 'ready') throw new Error(`redis subscriber is ${subscriber?.status ?? this.state}`);
      try {
        await this.viaLink(subscriber, 'SUBSCRIBE', () => subscriber.subscribe(...channels));
      } catch (error) {
        // A timed-out SUBSCRIBE may still have reached the server: undo it so it cannot leak.
        // Sent before any later SUBSCRIBE of these channels: the bus serializes the operations on a channel.
        subscriber.unsubscribe(...channels).catch(() => {});
        throw error instanceof Error ? error : new Error('redis subscribe failed', { cause: error });
      }
      return channels.map(() => undefined);
    },
  });

  /** One UNSUBSCRIBE for the channels released in a turn; never fails (a connection going away forgets its subscriptions anyway). */
  private readonly unsubscribes = new TickBatch<string, undefined>({
    max: RESUBSCRIBE_BATCH,
    schedule: setImmediate,
    flush: async (channels) => {
      const subscriber = this.subscriber;
      try {
        if (subscriber && subscriber.status === 'ready') await subscriber.unsubscribe(...channels);
      } catch (error) {
        this.log.debug({ channels: channels.length, err: errorText(error) }, 'redis bus unsubscribe failed; the connection is going away');
      }
      return channels.map(() => undefined);
    },
  });

  protected async subscribeChannel(channel: string): Promise<void> {
    const subscriber = this.subscriber;
    if (this.state !== 'running' || !subscriber || subscriber.status !== 'ready') {
      throw this.subscribeFailure(channel, new Error(`redis subscriber is ${subscriber?.status ?? this.state}`));
    }
    try {
      await this.subscribes.add(channel);
    } catch (error) {
      throw this.subscribeFailure(channel, error);
    }
  }

  protected async unsubscribeChannel(channel: string): Promise<void> {
    const subscriber = this.subscriber;
    // Not connected: nothing to undo, and the next resubscribe skips the channel (its count is 0).
    if (!subscriber || subscriber.status !== 'ready') return;
    await this.unsubscribes.add(channel);
  }

  protected sendPublish(channel: string, bytes: Buffer): Promise<number> {
    // publisherProblem() ran just before, so the publisher exists and is ready.
    const publisher = this.publisher!;
    if (publisher.stream) publishWrites.hold(publisher.stream);
    return this.viaLink(publisher, 'PUBLISH', () => publisher.publish(channel, bytes));
  }

  protected publisherProblem(): string | undefined {
    const status = this.publisher?.status;
    return status === 'ready' ? undefined : `redis publisher is ${status ?? 'not connected'}`;
  }

  protected connectionProblem(): string | undefined {
    const problems: string[] = [];
    if (this.publisher?.status !== 'ready') problems.push(`publisher ${this.publisher?.status ?? 'not connected'}`);
    if (this.subscriber?.status !== 'ready') problems.push(`subscriber ${this.subscriber?.status ?? 'not connected'}`);
    return problems.length === 0 ? undefined : `redis ${problems.join(', ')}`;
  }

  protected canaryChannels(): string[] {
    return [this.canaryChannel];
  }

  protected canProbe(): boolean {
    return this.publisher?.status === 'ready' && this.subscriber?.status === 'ready';
  }

  protected recoverDeaf(): void {
    this.replace(this.subscriber, 'canary did not come back');
  }

  protected async disconnect(): Promise<void> {
    await Promise.all([this.closeClient(this.publisher), this.closeClient(this.subscriber)]);
  }
}

/**
 * One call for the composition root: `sharded: true` gives the Redis Cluster
 * driver (SPUBLISH / SSUBSCRIBE), otherwise classic Pub/Sub on one server.
 */
export function createRedisBus(options: RedisBusOptions): Bus & Pick<RedisBus, 'stats' | 'probeNow' | 'linkStats'> {
  return options.sharded ? new ShardedRedisBus(options) : new RedisBus(options);
}
