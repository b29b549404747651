/** The RabbitMQ bus's options, their defaults, and the one check of them at construction. */
import { ConfigError } from '../config/errors.js';
import { integer, nameComponent } from '../config/validate.js';
import type { LaneLogger } from '../log-types.js';

export interface RabbitBusOptions {
  /** AMQP URL, e.g. `amqp://guest:guest@127.0.0.1:5672`. Required. */
  url: string;
  /** Environment name, first part of the exchange and queue names. Default `dev`. */
  env?: string;
  /** Service name, second part of the exchange and queue names. Default `nerve`. */
  service?: string;
  /** This node's id: names its queue and its connections. Required. */
  nodeId: string;
  /** pino-compatible logger. Default: silent. */
  logger?: LaneLogger;
  /** Per-message TTL (AMQP `expiration`): an envelope not consumed within it is dropped, ms. Default 10000. */
  messageTtlMs?: number;
  /** Most envelopes waiting in the node's queue; beyond, the oldest are dropped (`drop-head`). Default 100000. */
  maxQueueLength?: number;
  /** A publish not confirmed within this long rejects with `bus_unavailable`, ms. Default 2000. */
  publishTimeoutMs?: number;
  /** How long `start` waits for the broker before rejecting with `bus_unavailable`, ms. Default 10000. */
  startTimeoutMs?: number;
  /** Reconnect backoff, lowest and highest delay, ms (rabbitmq-client retryLow / retryHigh). Defaults 50 and 2000. */
  reconnectLowMs?: number;
  reconnectHighMs?: number;
  /** AMQP heartbeat, seconds: a silent broker is detected after about twice this. Default 10. */
  heartbeatSeconds?: number;
  /** Milliseconds between canary rounds; 0 disables the canary. Default 5000. */
  canaryIntervalMs?: number;
  /** Milliseconds a canary may take to come back before the consumer is declared deaf. Default 2000. */
  canaryTimeoutMs?: number;
  /**
   * Publish only: no consuming connection, no node queue, no canary;
   * `acquire` is refused. For processes that deliver into the hot lane but
   * never receive from it (the chat-store worker's chat intake). Default false.
   */
  publishOnly?: boolean;
}

export interface NormalizedOptions {
  url: string;
  env: string;
  service: string;
  nodeId: string;
  messageTtlMs: number;
  maxQueueLength: number;
  publishTimeoutMs: number;
  startTimeoutMs: number;
  reconnectLowMs: number;
  reconnectHighMs: number;
  heartbeatSeconds: number;
  canaryIntervalMs: number;
  canaryTimeoutMs: number;
  publishOnly: boolean;
}

export function normalizeRabbitBusOptions(options: RabbitBusOptions): NormalizedOptions {
  let parsed: URL | undefined;
  try {
    parsed = new URL(options.url);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:')) {
    throw new ConfigError('amqpUrl', 'an amqp:// or amqps:// URL', options.url);
  }
  const normalized: NormalizedOptions = {
    url: options.url,
    env: nameComponent('env', options.env ?? 'dev'),
    service: nameComponent('service', options.service ?? 'nerve'),
    nodeId: nameComponent('nodeId', options.nodeId),
    messageTtlMs: integer('messageTtlMs', options.messageTtlMs ?? 10_000, 1, 86_400_000),
    maxQueueLength: integer('maxQueueLength', options.maxQueueLength ?? 100_000, 1, 100_000_000),
    publishTimeoutMs: integer('publishTimeoutMs', options.publishTimeoutMs ?? 2000, 1, 600_000),
    startTimeoutMs: integer('startTimeoutMs', options.startTimeoutMs ?? 10_000, 1, 600_000),
    reconnectLowMs: integer('reconnectLowMs', options.reconnectLowMs ?? 50, 1, 600_000),
    reconnectHighMs: integer('reconnectHighMs', options.reconnectHighMs ?? 2000, 1, 600_000),
    heartbeatSeconds: integer('heartbeatSeconds', options.heartbeatSeconds ?? 10, 0, 3600),
    canaryIntervalMs: integer('canaryIntervalMs', options.canaryIntervalMs ?? 5000, 0, 3_600_000),
    canaryTimeoutMs: integer('canaryTimeoutMs', options.canaryTimeoutMs ?? 2000, 1, 3_600_000),
    publishOnly: options.publishOnly ?? false,
  };
  if (normalized.reconnectHighMs < normalized.reconnectLowMs) {
    throw new ConfigError('reconnectHighMs', `at least reconnectLowMs (${normalized.reconnectLowMs})`, normalized.reconnectHighMs);
  }
  return normalized;
}
