/**
 * What the two Redis hot-lane drivers share (redis.ts: classic Pub/Sub on
 * one server; redis-sharded.ts: sharded Pub/Sub on Redis Cluster): the
 * lifecycle, the binary envelope on the wire, counters, health, the canary,
 * and the ioredis settings that make publish fail fast instead of hang.
 * Drivers implement connection handling and the raw commands.
 */
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import type { LaneHealth } from '../lanes.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { RefCountedBus } from './base.js';
import { BUS_ENVELOPE_VERSION, type BusEnvelope } from './bus.js';
import { Canary } from './canary.js';
import { takeWireMessage, type BusIntake } from './intake.js';
import type { ChannelNamer } from './channels.js';
import { encodeEnvelope } from './envelope.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import { fullJitter } from '../backoff.js';
import { errorText } from '../errors.js';
import { DEFAULT_PROBE_INTERVAL_MS, RedisLink, type LinkStats } from '../redis/link.js';

/** The part of a pino logger the bus uses; a pino `Logger` fits. */
export interface BusLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silentLogger: BusLogger = { debug() {}, info() {}, warn() {}, error() {} };

export interface RedisBusOptions {
  /**
   * Redis URL (`redis://[:password@]host:port[/db]`, `rediss://` for TLS).
   * Pub/Sub mode: the server. Sharded mode: a seed node, used when `nodes`
   * is not given. One of `url` / `nodes` is required.
   */
  url?: string;
  /** Sharded mode: cluster seed nodes. Default: the host and port of `url`. */
  nodes?: Array<{ host: string; port: number }>;
  /** Use Redis Cluster sharded Pub/Sub (SPUBLISH / SSUBSCRIBE, Redis 7+). Default false (PUBLISH / SUBSCRIBE). */
  sharded?: boolean;
  /** This node's id: names its canary channel and its connections (`CLIENT LIST`). Required. */
  nodeId: string;
  /** Channel namer of the node; the canary channel is derived from `namer.node(nodeId)`. Required. */
  namer: ChannelNamer;
  /** pino-compatible logger. Default: silent. */
  logger?: BusLogger;
  /** Milliseconds between canary rounds; 0 disables the canary. Default 5000. */
  canaryIntervalMs?: number;
  /** Milliseconds a canary may take to come back before the subscriber is declared deaf. Default 2000. */
  canaryTimeoutMs?: number;
  /**
   * Milliseconds between PINGs on every connection (src/redis/link.ts); a
   * connection silent for a probe interval is replaced. 0 disables. Default 1000.
   */
  probeIntervalMs?: number;
  /** Milliseconds before a command (PUBLISH, SUBSCRIBE) without a reply is rejected. Default 1000. */
  commandTimeoutMs?: number;
  /** Milliseconds a TCP connect may take. Default 2000. */
  connectTimeoutMs?: number;
  /** Milliseconds `start` waits for the first connection before rejecting with `bus_unavailable`. Default 10000. */
  startTimeoutMs?: number;
  /** Reconnect backoff: base delay, ms (the window doubles per attempt). Default 50. */
  reconnectBaseMs?: number;
  /** Reconnect backoff: largest window, ms. Default 2000. */
  reconnectMaxMs?: number;
  /** Extra ioredis options for every connection (TLS, username, password...). Default none. */
  redisOptions?: RedisOptions;
}

/** Counters for the node's metrics; monotonic since `start`. */
export interface RedisBusStats {
  /** Envelopes published (PUBLISH / SPUBLISH answered). */
  published: number;
  /** Envelopes received and handed to the node (canaries excluded). */
  received: number;
  /** Publishes rejected (bus down, timeout, encode error). */
  publishFailures: number;
  /** Messages on a subscribed channel that were not a valid envelope; dropped. */
  decodeErrors: number;
  /** Subscriber or publisher connections re-established after a loss. */
  reconnects: number;
  /** Canary probes that did not come back. */
  canaryFailures: number;
}

export interface NormalizedRedisBusOptions {
  url: string | undefined;
  nodes: Array<{ host: string; port: number }>;
  sharded: boolean;
  nodeId: string;
  namer: ChannelNamer;
  logger: BusLogger;
  canaryIntervalMs: number;
  canaryTimeoutMs: number;
  probeIntervalMs: number;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  startTimeoutMs: number;
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  redisOptions: RedisOptions;
}

function nonNegativeInt(name: string, value: number, max = 3_600_000): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new TypeError(`RedisBus option ${name}: expected an integer from 0 to ${max}, got ${String(value)}`);
  }
  return value;
}

/** Validate options at construction, with a message naming the option. */
export function normalizeRedisBusOptions(options: RedisBusOptions): NormalizedRedisBusOptions {
  if (!options.nodeId) throw new TypeError('RedisBus option nodeId is required');
  if (!options.namer) throw new TypeError('RedisBus option namer is required');
  let nodes = options.nodes ?? [];
  if (options.url !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new TypeError(`RedisBus option url: expected a redis:// or rediss:// URL, got ${JSON.stringify(options.url)}`);
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
      throw new TypeError(`RedisBus option url: expected a redis:// or rediss:// URL, got ${JSON.stringify(options.url)}`);
    }
    if (nodes.length === 0) nodes = [{ host: parsed.hostname, port: Number(parsed.port || 6379) }];
  } else if (!options.sharded) {
    throw new TypeError('RedisBus option url is required in Pub/Sub mode');
  } else if (nodes.length === 0) {
    throw new TypeError('RedisBus in sharded mode needs option nodes (or url)');
  }
  const normalized: NormalizedRedisBusOptions = {
    url: options.url,
    nodes,
    sharded: options.sharded ?? false,
    nodeId: options.nodeId,
    namer: options.namer,
    logger: options.logger ?? silentLogger,
    canaryIntervalMs: nonNegativeInt('canaryIntervalMs', options.canaryIntervalMs ?? 5000),
    canaryTimeoutMs: nonNegativeInt('canaryTimeoutMs', options.canaryTimeoutMs ?? 2000),
    probeIntervalMs: nonNegativeInt('probeIntervalMs', options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS),
    commandTimeoutMs: nonNegativeInt('commandTimeoutMs', options.commandTimeoutMs ?? 1000),
    connectTimeoutMs: nonNegativeInt('connectTimeoutMs', options.connectTimeoutMs ?? 2000),
    startTimeoutMs: nonNegativeInt('startTimeoutMs', options.startTimeoutMs ?? 10_000),
    reconnectBaseMs: nonNegativeInt('reconnectBaseMs', options.reconnectBaseMs ?? 50),
    reconnectMaxMs: nonNegativeInt('reconnectMaxMs', options.reconnectMaxMs ?? 2000),
    redisOptions: options.redisOptions ?? {},
  };
  if (normalized.commandTimeoutMs === 0) throw new TypeError('RedisBus option commandTimeoutMs must be positive: a publish must never hang');
  if (normalized.reconnectMaxMs < normalized.reconnectBaseMs) {
    throw new TypeError('RedisBus option reconnectMaxMs must be at least reconnectBaseMs');
  }
  return normalized;
}

/**
 * Full-jitter exponential backoff: a uniform delay in [0, min(max, base·2^n)].
 * Why full jitter: when Redis restarts, every node loses its connections at
 * the same instant; without jitter they would all reconnect and resubscribe
 * thousands of channels in the same millisecond, again and again
 * (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
 */
export function unavailable(message: string, cause?: unknown): NerveError {
  return new NerveError(ErrorCode.BusUnavailable, message, cause === undefined ? undefined : { cause });
}

/** An outgoing envelope's bytes (every networked bus): one that cannot be encoded counts as a failed publish. */
export function encodeOutgoing(counters: RedisBusStats, envelope: BusEnvelope): Buffer {
  try {
    return encodeEnvelope(envelope);
  } catch (error) {
    counters.publishFailures += 1;
    throw error;
  }
}

/** A canary probe from node `origin` (every networked bus sends them to itself). */
export function canaryBytes(origin: string, id: string): Buffer {
  return encodeEnvelope({ v: BUS_ENVELOPE_VERSION, type: 'canary', id, origin, class: 'ephemeral', payload: '' });
}

/**
 * ioredis settings shared by every connection. The important ones:
 * `enableOfflineQueue: false` makes a command on a disconnected client reject
 * at once instead of waiting for a reconnect that may never come;
 * `commandTimeout` bounds a command on a connection that is up but silent;
 * `autoResubscribe: false` because the bus resubscribes itself, from its own
 * reference counts, after every reconnect.
 */
export function connectionOptions(options: NormalizedRedisBusOptions, role: string): RedisOptions {
  return {
    connectionName: `nerve-bus-${role}-${options.nodeId}`,
    connectTimeout: options.connectTimeoutMs,
    commandTimeout: options.commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt: number) => fullJitter(attempt, options.reconnectBaseMs, options.reconnectMaxMs),
    ...options.redisOptions,
  };
}

type State = 'idle' | 'starting' | 'running' | 'closed';

export abstract class RedisBusCore extends RefCountedBus {
  protected readonly options: NormalizedRedisBusOptions;
  protected readonly log: BusLogger;
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
        : (this.linkProblems().join(', ') ||
          this.connectionProblem() ||
          (this.deafChannels.size > 0 ? `canary on ${[...this.deafChannels].join(', ')} did not come back; subscriber reconnecting` : undefined));
    return problem === undefined ? { lane: 'bus', driver: this.driver, ok: true } : { lane: 'bus', driver: this.driver, ok: false, detail: problem };
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
