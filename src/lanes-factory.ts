/**
 * Builds the lanes a node runs on from its options: memory by default, Redis
 * with `redisUrl`, RabbitMQ for the cold lane with `amqpUrl`. With
 * `bus: 'rabbitmq'` chat history is in PostgreSQL, and presence, sessions and
 * the mailbox stay on Redis if set, else per node (RabbitMQ has none of
 * them). No mailbox when `mailboxTtlMs` is 0.
 */
import type pg from 'pg';
import type { Bus } from './bus/bus.js';
import type { ChannelNamer } from './bus/channels.js';
import { MemoryBus } from './bus/memory.js';
import { RabbitBus } from './bus/rabbitmq.js';
import { createRedisBus } from './bus/redis.js';
import { pubsubBufferNeed } from './redis/output-buffer.js';
import type { EventLog } from './events/event-log.js';
import { MemoryEventLog } from './events/memory.js';
import { RabbitEventLog } from './events/rabbitmq.js';
import { PostgresChatArchive } from './history/archive.js';
import type { History, RoomRef } from './history/history.js';
import { MemoryHistory } from './history/memory.js';
import { IntakeHistory } from './history/intake-history.js';
import { PostgresHistory } from './history/postgres.js';
import { RedisStreamsHistory } from './history/redis-streams.js';
import type { Logger } from './logger.js';
import type { Mailbox } from './mailbox/mailbox.js';
import { MemoryMailbox } from './mailbox/memory.js';
import { RedisMailbox } from './mailbox/redis.js';
import type { NodeOptions } from './config/options.js';
import { redisSentinelSettings } from './config/normalize.js';
import type { Presence } from './presence/presence.js';
import { MemoryPresence } from './presence/memory.js';
import { RedisPresence } from './presence/redis.js';
import type { PresenceExpiry, PresenceRejoin } from './presence/redis-options.js';
import { MemoryRoomSessions } from './sessions/memory.js';
import { RedisRoomSessions } from './sessions/redis.js';
import { redisStoreConnection, sentinelRedisOptions } from './redis/connection.js';
import type { RoomSessions } from './sessions/sessions.js';
import type { CallStore } from './calls/calls.js';
import { MemoryCallStore } from './calls/memory.js';
import { RedisCallStore } from './calls/redis.js';
import type { ReadPositions } from './receipts/receipts.js';
import { MemoryReadPositions } from './receipts/memory.js';
import { PostgresReadPositions } from './receipts/postgres.js';
import { RedisReadPositions } from './receipts/redis.js';

export interface Lanes {
  bus: Bus;
  history: History;
  presence: Presence;
  events: EventLog;
  /** Signal mailbox for users who reconnect within seconds; undefined when disabled. */
  mailbox: Mailbox | undefined;
  /** Room sessions behind the `session` of lifecycle events and `room.ended` (docs/events.md). */
  sessions: RoomSessions;
  /** Call participation behind `call.started` / `call.ended` (src/calls/); expires with the presence TTL. */
  calls: CallStore;
  /** Read positions behind the `read` op (src/receipts/); PostgreSQL keeps them from `read.updated`. */
  receipts: ReadPositions;
}

/** Lanes supplied by the caller (tests, embedding) instead of built from options. */
export type LaneOverrides = Partial<Lanes>;

export interface LaneContext {
  namer: ChannelNamer;
  log: Logger;
  /** The node's PostgreSQL pool (with `postgresUrl`): the chat history of `bus: 'rabbitmq'` lives there. */
  pool?: pg.Pool | undefined;
  /** Told when presence entries of a dead node expired (Redis presence). */
  onPresenceExpired: (room: RoomRef, expiry: PresenceExpiry) => void;
  /** Told when this node's presence entries that had expired (it was cut off or stalled) were added back (Redis presence). */
  onPresenceRestored: (room: RoomRef, rejoin: PresenceRejoin) => void;
}

/** The chat history of `bus: 'rabbitmq'`: stored by the node, or by the chat-store worker with reads from PostgreSQL. */
function postgresHistory(options: NodeOptions, context: LaneContext, bus: Bus): History {
  const stored = new PostgresHistory({
    pool: required(context.pool, 'a PostgreSQL pool (postgresUrl)'),
    schema: options.postgresSchema,
    bus,
    maxMessages: options.limits.historySize,
    idempotencyWindowMs: options.limits.idempotencyWindowMs,
    recoveryLimit: options.limits.recoveryLimit,
  });
  if (options.chatPath === 'node') return stored;
  return new IntakeHistory({
    url: required(options.amqpUrl, 'an AMQP URL (amqpUrl)'),
    env: options.env,
    service: options.service,
    nodeId: options.nodeId,
    reads: stored,
    timeoutMs: options.chatIntakeTimeoutMs,
    logger: context.log.child({ lane: 'history' }),
  });
}

export function createLanes(options: NodeOptions, context: LaneContext, overrides: LaneOverrides = {}): Lanes {
  const redisUrl = options.redisUrl;
  const sharded = options.redisMode === 'sharded';
  if (redisUrl && sharded && !context.namer.hashTags) {
    // The history script SPUBLISHes on the room channel; without the tag it lies in another slot.
    throw new TypeError('redisMode sharded needs a ChannelNamer built with hashTags: true');
  }
  // Every Redis lane PINGs its connection every probeIntervalMs and replaces a silent one (src/redis/link.ts).
  const store = redisUrl
    ? { ...redisStoreConnection(redisUrl, sharded, redisSentinelSettings(options)), probeIntervalMs: options.probeIntervalMs, logger: context.log }
    : undefined;
  const bus = overrides.bus ?? createBus(options, context);
  // With PostgreSQL, history paging reads below what the stream or ring holds from the chat-store worker's tables.
  const archive = context.pool ? new PostgresChatArchive(context.pool, options.postgresSchema) : undefined;
  const history =
    overrides.history ??
    (options.bus === 'rabbitmq'
      ? postgresHistory(options, context, bus)
      : store && options.bus === 'redis'
        ? new RedisStreamsHistory({
            ...store,
            publishCommand: sharded ? 'SPUBLISH' : 'PUBLISH',
            prefix: context.namer.prefix,
            maxMessages: options.limits.historySize,
            ttlMs: options.historyTtlMs,
            policies: options.historyPolicies,
            idempotencyWindowMs: options.limits.idempotencyWindowMs,
            recoveryLimit: options.limits.recoveryLimit,
            waitReplicas: options.redisWaitReplicas,
            waitTimeoutMs: options.redisWaitTimeoutMs,
            waitAllReplicas: options.redisWaitAllReplicas,
            failoverWatch: redisSentinelSettings(options),
            archive,
          })
        : new MemoryHistory({
            bus,
            maxMessages: options.limits.historySize,
            idempotencyWindowMs: options.limits.idempotencyWindowMs,
            recoveryLimit: options.limits.recoveryLimit,
            archive,
          }));
  const presence =
    overrides.presence ??
    (store
      ? new RedisPresence({
          ...store,
          prefix: context.namer.prefix,
          ttlMs: options.presenceTtlMs,
          onExpire: context.onPresenceExpired,
          onRejoin: context.onPresenceRestored,
        })
      : new MemoryPresence());
  const events =
    overrides.events ??
    (options.amqpUrl
      ? new RabbitEventLog({
          url: options.amqpUrl,
          env: options.env,
          service: options.service,
          logger: context.log.child({ lane: 'events' }),
        })
      : new MemoryEventLog());
  const mailbox =
    'mailbox' in overrides
      ? overrides.mailbox
      : options.mailboxTtlMs === 0
        ? undefined
        : store
          ? new RedisMailbox({ ...store, prefix: context.namer.prefix, ttlMs: options.mailboxTtlMs })
          : new MemoryMailbox({ ttlMs: options.mailboxTtlMs });
  const sessions = overrides.sessions ?? (store ? new RedisRoomSessions({ ...store, prefix: context.namer.prefix }) : new MemoryRoomSessions());
  const calls =
    overrides.calls ??
    (store
      ? new RedisCallStore({ ...store, prefix: context.namer.prefix, ttlMs: options.presenceTtlMs })
      : new MemoryCallStore({ ttlMs: options.presenceTtlMs }));
  // Without Redis, PostgreSQL (when set) is what the nodes share: `--bus rabbitmq` keeps read positions cluster-wide there.
  const receipts =
    overrides.receipts ??
    (store
      ? new RedisReadPositions({ ...store, prefix: context.namer.prefix })
      : context.pool
        ? new PostgresReadPositions({ pool: context.pool, schema: options.postgresSchema })
        : new MemoryReadPositions());
  return { bus, history, presence, events, mailbox, sessions, calls, receipts };
}

/** The hot lane the options name (`options.bus` is already resolved from `auto`). */
function createBus(options: NodeOptions, context: LaneContext): Bus {
  const logger = context.log.child({ lane: 'bus' });
  switch (options.bus) {
    case 'redis':
      return createRedisBus({
        url: required(options.redisUrl, 'redisUrl'),
        sharded: options.redisMode === 'sharded',
        redisOptions: sentinelRedisOptions(redisSentinelSettings(options), required(options.redisUrl, 'redisUrl')),
        nodeId: options.nodeId,
        namer: context.namer,
        logger,
        // The canary (a deaf subscriber) runs at the probe's pace, so either fault is noticed within 2 probe intervals.
        probeIntervalMs: options.probeIntervalMs,
        canaryIntervalMs: options.probeIntervalMs,
        canaryTimeoutMs: options.probeIntervalMs,
        // Warn at start when Redis would cut a subscriber before one room's burst fits (docs/operations.md, "Redis").
        pubsubBufferNeedBytes: pubsubBufferNeed(options.limits),
      });
    case 'rabbitmq':
      return new RabbitBus({ url: required(options.amqpUrl, 'amqpUrl'), env: options.env, service: options.service, nodeId: options.nodeId, logger });
    case 'memory':
      return new MemoryBus();
  }
}

/** normalizeOptions guarantees the URL a driver needs; options built by hand get a precise error instead of a crash. */
function required<T>(value: T | undefined, setting: string): T {
  if (value === undefined) throw new TypeError(`the lanes need ${setting}`);
  return value;
}
