/**
 * What the two Redis hot-lane drivers share (redis.ts: classic Pub/Sub on
 * one server; redis-sharded.ts: sharded Pub/Sub on Redis Cluster): the
 * lifecycle, publish and receive, counters, health, the canary and the
 * connections' watchdogs. Drivers implement connection handling and the raw
 * commands (the hooks below); their options are in redis-options.ts.
 */
import type { Cluster, Redis } from 'ioredis';
import type { LaneHealth } from '../lanes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { RefCountedBus } from './base.js';
import type { BusEnvelope } from './bus.js';
import { Canary } from './canary.js';
import { takeWireMessage, type BusIntake } from './intake.js';
import { canaryBytes, encodeOutgoing, unavailable, type RedisBusStats } from './wire.js';
import { normalizeRedisBusOptions, type NormalizedRedisBusOptions, type RedisBusOptions } from './redis-options.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import { errorText } from '../errors.js';
import type { LaneLogger } from '../log-types.js';
import { RedisLink, type LinkStats } from '../redis/link.js';
import { pubsubLimitWarning, readPubsubLimit } from '../redis/output-buffer.js';

type State = 'idle' | 'starting' | 'running' | 'closed';

export abstract class RedisBusCore extends RefCountedBus {
  protected readonly options: NormalizedRedisBusOptions;
  protected readonly log: LaneLogger;
  protected state: State = 'idle';
  protected readonly counters: RedisBusStats = {
    published: 0,
    received: 0,
    publishFailures: 0,
    decodeErrors: 0,
    reconnects: 0,
    canaryFailures: 0,
  };
  protected readonly canary: Canary;
  /** Canary channels whose last probe did not come back (health shows it). */
  private readonly deafChannels = new Set<string>();
  /** The server's pubsub output-buffer limit is below what the fan-out needs (checkOutputBuffer); shown on a healthy lane's `detail`. */
  private bufferWarning: string | undefined;

  constructor(options: RedisBusOptions) {
    super();
    this.options = normalizeRedisBusOptions(options);
    this.log = this.options.logger;
    this.canary = new Canary({
      intervalMs: this.options.canaryIntervalMs,
      timeoutMs: this.options.canaryTimeoutMs,
      channels: () => this.canaryChannels(),
      canProbe: (channel) => this.state === 'running' && this.canProbe(channel),
      send: (channel, id) => this.publishRaw(channel, canaryBytes(this.options.nodeId, id)),
      onDeaf: (channel) => {
        this.counters.canaryFailures += 1;
        this.deafChannels.add(channel);
        this.log.warn({ channel, driver: this.driver }, 'bus canary did not come back; reconnecting the subscriber');
        this.recoverDeaf(channel);
      },
      onHealthy: (channel) => {
        if (this.deafChannels.delete(channel)) this.log.info({ channel, driver: this.driver }, 'bus canary is back');
      },
    });
  }

  // ------------------------------------------------------------ driver hooks

  /** Open the connections and wait until they are ready (bounded by startTimeoutMs). */
  protected abstract connect(): Promise<void>;
  /** Close every connection. */
  protected abstract disconnect(): Promise<void>;
  /** Send one PUBLISH / SPUBLISH; resolve with the receiver count. */
  protected abstract sendPublish(channel: string, bytes: Buffer): Promise<number>;
  /** Why a publish would fail right now (publisher down), or undefined when it may go. */
  protected abstract publisherProblem(): string | undefined;
  /** Why the lane is not healthy right now, or undefined. */
  protected abstract connectionProblem(): string | undefined;
  /** The private canary channels to probe (one per subscriber connection). */
  protected abstract canaryChannels(): string[];
  /** Whether the connections carrying `channel` are up. */
  protected abstract canProbe(channel: string): boolean;
  /** Reconnect the subscriber connection carrying `channel`. */
  protected abstract recoverDeaf(channel: string): void;

  // ------------------------------------------------------------ lifecycle

  protected async open(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`${this.driver} bus cannot start: it is ${this.state}`);
    this.state = 'starting';
    try {
      await this.connect();
    } catch (error) {
      this.state = 'closed';
      await this.disconnect().catch(() => {});
      throw error instanceof NerveError ? error : unavailable(`${this.driver} bus could not connect: ${errorText(error)}`, error);
    }
    // close() may have run while we were connecting.
    if (this.state !== 'starting') {
      await this.disconnect().catch(() => {});
      throw unavailable(`${this.driver} bus was closed while starting`);
    }
    this.state = 'running';
    this.canary.start();
    this.log.info({ driver: this.driver, nodeId: this.options.nodeId }, 'bus connected');
  }

  /** A method, not a field read, so TypeScript does not narrow it away across awaits. */
  protected closed(): boolean {
    return this.state === 'closed';
  }

  protected async shutdown(): Promise<void> {
    this.state = 'closed';
    this.canary.stop();
    await this.disconnect();
  }

  /** Every channel the subscriber connections must hold: the referenced ones plus the canaries. */
  protected allWantedChannels(): string[] {
    return [...this.wantedChannels(), ...this.canaryChannels()];
  }

  // ------------------------------------------------------------ publish and receive

  async publish(channel: string, envelope: BusEnvelope): Promise<number> {
    return this.publishRaw(channel, encodeOutgoing(this.counters, envelope));
  }

  private async publishRaw(channel: string, bytes: Buffer): Promise<number> {
    const problem = this.state === 'running' ? this.publisherProblem() : `${this.driver} bus is ${this.state}`;
    if (problem !== undefined) {
      this.counters.publishFailures += 1;
      throw unavailable(problem);
    }
    try {
      const receivers = await this.sendPublish(channel, bytes);
      this.counters.published += 1;
      return receivers;
    } catch (error) {
      this.counters.publishFailures += 1;
      // Sent but not answered: other nodes may have received it (it is not `bus_unavailable`, which means nothing was sent).
      if (error instanceof OutcomeUnknownError) throw error;
      throw unavailable(`${this.driver} publish failed: ${errorText(error)}`, error);
    }
  }

  /** Driver entry point for every message (`messageBuffer` / `smessageBuffer`). Never throws. */
  protected onWireMessage(channelBytes: Buffer, message: Buffer): void {
    if (this.state !== 'running') return;
    this.intake ??= { counters: this.counters, canary: this.canary, log: this.log };
    takeWireMessage(this.intake, this.handler, channelBytes.toString(), message);
  }

  private intake: BusIntake | undefined;

  /** Subscribe failures map to bus_unavailable, like publish failures. */
  protected subscribeFailure(channel: string, error: unknown): NerveError {
    return error instanceof NerveError ? error : unavailable(`${this.driver} subscribe to ${channel} failed: ${errorText(error)}`, error);
  }

  // ------------------------------------------------------------ connections

  /**
   * Attach the listeners every connection needs: an `error` listener (an
   * unhandled ioredis error would crash the process), one warning per outage
   * rather than one per retry, and `onReconnect` after every `ready` but the
   * first, where the driver resubscribes.
   */
  protected watch(client: Redis | Cluster, role: string, onReconnect: () => void): RedisLink {
    const link = new RedisLink({ client, lane: 'bus', role, intervalMs: this.options.probeIntervalMs, log: this.log });
    this.links.add(link);
    // Probing from the start: a connection whose handshake is held is cut like a silent one.
    if (this.state !== 'closed') link.start();
    let everReady = false;
    let down = false;
    client.on('error', (error: unknown) => {
      if (this.state === 'closed') return;
      if (down) this.log.debug({ role, driver: this.driver, err: errorText(error) }, 'redis bus connection still failing');
      else this.log.warn({ role, driver: this.driver, err: errorText(error) }, 'redis bus connection error');
    });
    client.on('close', () => {
      if (this.state === 'closed' || down) return;
      down = true;
      if (everReady) this.log.warn({ role, driver: this.driver }, 'redis bus connection lost; reconnecting');
    });
    client.on('ready', () => {
      down = false;
      if (everReady && this.state !== 'closed') {
        this.counters.reconnects += 1;
        this.log.info({ role, driver: this.driver }, 'redis bus connection re-established');
        onReconnect();
      }
      everReady = true;
    });
    return link;
  }

  /** The watchdog of every connection (src/redis/link.ts); a closed connection's is dropped by closeClient. */
  private readonly links = new Set<RedisLink>();

  /** Why a connection is not trusted now (failed probe, timed-out command), per connection. */
  protected linkProblems(): string[] {
    const problems: string[] = [];
    for (const link of this.links) {
      const problem = link.problem();
      if (problem !== undefined) problems.push(problem);
    }
    return problems;
  }

  /** Probe failures and connection replacements of the bus's connections, summed, for metrics. */
  linkStats(): LinkStats[] {
    const total: LinkStats = { ...this.retired };
    for (const link of this.links) {
      total.probeFailures += link.stats.probeFailures;
      total.replacements += link.stats.replacements;
      total.reconnects += link.stats.reconnects;
    }
    return [total];
  }

  /** Counts of the links of connections already closed, so the metrics stay monotonic. */
  private readonly retired: LinkStats = { lane: 'bus', probeFailures: 0, replacements: 0, reconnects: 0 };

  /** Stop watching `client` (it is being closed). */
  protected unwatch(client: Redis | Cluster | undefined): void {
    const link = client && RedisLink.of(client);
    if (!link || !this.links.delete(link)) return;
    link.stop();
    this.retired.probeFailures += link.stats.probeFailures;
    this.retired.replacements += link.stats.replacements;
    this.retired.reconnects += link.stats.reconnects;
  }

  /** Replace `client`'s connection with a fresh one (src/redis/link.ts): resubscribing starts over on a socket with nothing pending. */
  protected replace(client: Redis | Cluster | undefined, reason: string): void {
    if (client) RedisLink.of(client)?.cut(reason);
  }

  /** Run one command on `client` through its link: a reply that never came throws OutcomeUnknownError and replaces the connection. */
  protected viaLink<T>(client: Redis | Cluster, what: string, call: () => Promise<T>): Promise<T> {
    const link = RedisLink.of(client);
    return link ? link.run(what, call) : call();
  }

  /** Resolve when `client` is ready; reject after `timeoutMs` (it keeps retrying; the caller decides). */
  protected waitReady(client: Redis | Cluster, timeoutMs: number, what: string): Promise<void> {
    if (client.status === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        client.off('ready', onReady);
        reject(unavailable(`${what} not ready after ${timeoutMs} ms (status ${client.status})`));
      }, timeoutMs);
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      client.once('ready', onReady);
    });
  }

  /** Stop watching `client`, disconnect without waiting for a reconnect, and resolve once the socket is gone. */
  protected closeClient(client: Redis | Cluster | undefined): Promise<void> {
    this.unwatch(client);
    if (!client || client.status === 'end') return Promise.resolve();
    // Between retries there is no socket: disconnect() just cancels the retry timer and no 'end' follows.
    const socketless = client.status === 'reconnecting' || client.status === 'wait';
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, socketless ? 0 : 2000);
      timer.unref();
      client.once('end', () => {
        clearTimeout(timer);
        resolve();
      });
      client.disconnect();
    });
  }

  // ------------------------------------------------------------ status

  health(): LaneHealth {
    const problem =
      this.state !== 'running'
        ? `${this.driver} bus is ${this.state}`
        : this.linkProblems().join(', ') ||
          this.connectionProblem() ||
          (this.deafChannels.size > 0 ? `canary on ${[...this.deafChannels].join(', ')} did not come back; subscriber reconnecting` : undefined);
    if (problem !== undefined) return { lane: 'bus', driver: this.driver, ok: false, detail: problem };
    return this.bufferWarning === undefined
      ? { lane: 'bus', driver: this.driver, ok: true }
      : { lane: 'bus', driver: this.driver, ok: true, detail: `warning: ${this.bufferWarning}` };
  }

  /**
   * Compare the server's `client-output-buffer-limit pubsub` with the
   * fan-out's need (src/redis/output-buffer.ts); warn once in the log and
   * keep the warning on the lane's health. A server that refuses CONFIG
   * (managed Redis) is noted at debug. Never throws.
   */
  protected async checkOutputBuffer(redis: { config(subcommand: 'GET', parameter: string): Promise<unknown> }): Promise<void> {
    const need = this.options.pubsubBufferNeedBytes;
    if (need === 0) return;
    try {
      const limit = await readPubsubLimit(redis);
      const warning = pubsubLimitWarning(limit, need);
      if (warning === undefined) return;
      this.bufferWarning = warning;
      this.log.warn({ driver: this.driver, hardLimitBytes: limit?.hardBytes, needBytes: need }, warning);
    } catch (error) {
      this.log.debug({ driver: this.driver, err: errorText(error) }, 'could not read client-output-buffer-limit; not checked');
    }
  }

  /** A copy of the counters, for metrics. */
  stats(): RedisBusStats {
    return { ...this.counters };
  }

  /** Run one canary round now; resolves with the channels found deaf (and being recovered). */
  probeNow(): Promise<string[]> {
    return this.canary.round();
  }
}
