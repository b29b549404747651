/** The options of the Redis hot-lane drivers, their validation, and the ioredis settings they make. */
import type { RedisOptions } from 'ioredis';
import { fullJitter } from '../backoff.js';
import { ConfigError } from '../config/errors.js';
import { integer } from '../config/validate.js';
import { silentLogger, type LaneLogger } from '../log-types.js';
import { DEFAULT_PROBE_INTERVAL_MS } from '../redis/link.js';
import type { ChannelNamer } from './channels.js';

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
  logger?: LaneLogger;
  /** Milliseconds between canary rounds; 0 disables the canary. Default 5000. */
  canaryIntervalMs?: number;
  /** Milliseconds a canary may take to come back before the subscriber is declared deaf. Default 2000. */
  canaryTimeoutMs?: number;
  /** Milliseconds between PINGs on every connection (src/redis/link.ts); a silent one is replaced. 0 disables. Default 1000. */
  probeIntervalMs?: number;
  /**
   * Milliseconds before a command without a reply is rejected. Default 1000.
   * The subscriber connections wait at least `SUBSCRIBE_TIMEOUT_MS` (see there).
   */
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
  /**
   * Subscriber output Redis must be able to hold for this node, bytes
   * (src/redis/output-buffer.ts): at start the bus reads the server's
   * `client-output-buffer-limit` and warns when its pubsub hard limit is
   * lower. 0 skips the check. Default 0.
   */
  pubsubBufferNeedBytes?: number;
}

export interface NormalizedRedisBusOptions {
  url: string | undefined;
  nodes: Array<{ host: string; port: number }>;
  sharded: boolean;
  nodeId: string;
  namer: ChannelNamer;
  logger: LaneLogger;
  canaryIntervalMs: number;
  canaryTimeoutMs: number;
  probeIntervalMs: number;
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  startTimeoutMs: number;
  reconnectBaseMs: number;
  reconnectMaxMs: number;
  redisOptions: RedisOptions;
  pubsubBufferNeedBytes: number;
}

/** Every duration option is an integer of milliseconds up to an hour. */
const MAX_MS = 3_600_000;

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
    canaryIntervalMs: integer('canaryIntervalMs', options.canaryIntervalMs ?? 5000, 0, MAX_MS),
    canaryTimeoutMs: integer('canaryTimeoutMs', options.canaryTimeoutMs ?? 2000, 0, MAX_MS),
    probeIntervalMs: integer('probeIntervalMs', options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS, 0, MAX_MS),
    // Positive: a publish must never hang.
    commandTimeoutMs: integer('commandTimeoutMs', options.commandTimeoutMs ?? 1000, 1, MAX_MS),
    connectTimeoutMs: integer('connectTimeoutMs', options.connectTimeoutMs ?? 2000, 0, MAX_MS),
    startTimeoutMs: integer('startTimeoutMs', options.startTimeoutMs ?? 10_000, 0, MAX_MS),
    reconnectBaseMs: integer('reconnectBaseMs', options.reconnectBaseMs ?? 50, 0, MAX_MS),
    reconnectMaxMs: integer('reconnectMaxMs', options.reconnectMaxMs ?? 2000, 0, MAX_MS),
    redisOptions: options.redisOptions ?? {},
    pubsubBufferNeedBytes: integer('pubsubBufferNeedBytes', options.pubsubBufferNeedBytes ?? 0, 0, Number.MAX_SAFE_INTEGER),
  };
  if (normalized.reconnectMaxMs < normalized.reconnectBaseMs) {
    throw new ConfigError('reconnectMaxMs', `at least reconnectBaseMs (${normalized.reconnectBaseMs})`, normalized.reconnectMaxMs);
  }
  return normalized;
}

/**
 * The least a subscriber connection's command (SUBSCRIBE, UNSUBSCRIBE) may
 * take. ioredis times a command with a plain timer, and after an event-loop
 * stall longer than the timeout (a reconnect storm's handshakes) the timer
 * phase runs before the poll phase that would read the reply already waiting:
 * the batched SUBSCRIBE of a storm "timed out", its joins were refused, and
 * the link replaced the subscriber. A silent subscriber is still found by the
 * link's probe, which allows for such stalls, and by the canary.
 */
const SUBSCRIBE_TIMEOUT_MS = 10_000;

/**
 * ioredis settings of every bus connection: no offline queue (a command on a
 * disconnected client rejects at once), a command timeout (a silent
 * connection cannot hang a publish), and no auto-resubscribe (the bus
 * resubscribes from its own reference counts after every reconnect).
 */
export function connectionOptions(options: NormalizedRedisBusOptions, role: 'pub' | 'sub'): RedisOptions {
  return {
    connectionName: `nerve-bus-${role}-${options.nodeId}`,
    connectTimeout: options.connectTimeoutMs,
    commandTimeout: role === 'sub' ? Math.max(options.commandTimeoutMs, SUBSCRIBE_TIMEOUT_MS) : options.commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt: number) => fullJitter(attempt, options.reconnectBaseMs, options.reconnectMaxMs),
    ...options.redisOptions,
  };
}
