/**
 * The options of one nerve node. Fixed defaults live once, in
 * `NODE_DEFAULTS` and `DEFAULT_LIMITS` below: `normalizeOptions` and the
 * CLI's settings table (`--help`, the README) read them there. A default
 * that depends on other options is described on its field.
 */
import type { ApiKeyOption } from '../auth/api-keys.js';
import { PRESENCE_LIMITS, type IceServer, type Limits } from '../../packages/protocol/src/frames.js';
import { MAX_ID_LENGTH } from '../../packages/protocol/src/ids.js';
import type { PusherApp } from './pusher-apps.js';
import type { TenantQuota } from '../quotas/quotas.js';

export interface HistoryPolicyOption {
  prefix: string;
  maxMessages?: number;
  ttlMs?: number;
}

/**
 * Which hot-lane Bus a node runs: `auto` picks `redis` when a Redis URL is
 * set, else `memory`; `rabbitmq` routes across nodes through RabbitMQ
 * bindings (src/bus/rabbitmq.ts) and needs `amqpUrl` and `postgresUrl`.
 */
export type BusDriver = 'auto' | 'memory' | 'redis' | 'rabbitmq';
export const BUS_DRIVERS: readonly BusDriver[] = ['auto', 'memory', 'redis', 'rabbitmq'];

export type RedisMode = 'pubsub' | 'sharded';
export const REDIS_MODES: readonly RedisMode[] = ['pubsub', 'sharded'];
export type ChatPath = 'node' | 'worker';
export const CHAT_PATHS: readonly ChatPath[] = ['node', 'worker'];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
/** `json`: one JSON object a line, for log pipelines. `pretty`: pino-pretty's coloured lines, for a developer's terminal. */
export type LogFormat = 'pretty' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['pretty', 'json'];

export interface LimitOptions extends Limits {
  /** Milliseconds a socket may stay open before sending `connect`. */
  handshakeTimeoutMs: number;
  /** Chat messages kept per room by the hot history (memory exactly; Redis Streams with `MAXLEN ~`). */
  historySize: number;
  /** Chat messages returned by `join` when the client asks for none in particular. */
  historyOnJoin: number;
  /** Most messages a resume may return before answering `recovered: false`. */
  recoveryLimit: number;
  /** Window in which a repeated client message id is recognised, ms. */
  idempotencyWindowMs: number;
  /** Send buffer above which droppable (ephemeral) frames are skipped for a socket, bytes. */
  sendBufferSoftBytes: number;
  /** Send buffer above which a socket is closed as a slow consumer (4009), bytes. */
  sendBufferHardBytes: number;
  /** Errors (invalid or rate-limited frames) a connection may cause per 10 s before it is closed with 4008. */
  maxErrorsPer10s: number;
  /** Sustained publishes per second into one room, summed over its members on this node (token bucket per room). */
  roomRatePerSecond: number;
  /** Burst of the per-room publish bucket. */
  roomRateBurst: number;
  /** Open WebSockets per remote IP address on this node; over it upgrades get 429. 0 = no limit. */
  maxConnectionsPerIp: number;
  /** Open connections per (tenant, user) on this node; over it `connect` gets `too_many_connections` and close 4011. 0 = no limit. */
  maxConnectionsPerUser: number;
  /** Time a new TCP connection has to send complete request headers (slowloris), ms. */
  headersTimeoutMs: number;
  /** Largest presence state (client's merged with the token's `presence` claim), bytes of JSON; larger: `presence_too_large`. */
  presenceStateMaxBytes: number;
  /** Rooms with more members than this are large: `joined`/`presence` list only the first this many and members get `member_count` frames instead of member frames. 0 = never. */
  presenceListMax: number;
  /** In a large room, members get at most one `member_count` frame per this many ms. */
  presenceCountIntervalMs: number;
}

export interface NodeOptions {
  /** TCP port for HTTP and WebSocket. 0 picks a free port. */
  port: number;
  /** Interface to listen on. */
  host: string;
  /** This node's id, unique in the cluster. Default `{hostname}-{random}` (`defaultNodeId`). */
  nodeId: string;
  /** Environment name, the first component of every channel and key name. */
  env: string;
  /** Service name, the second component of every channel and key name. */
  service: string;
  /** Tenant for connections whose credentials name none. */
  defaultTenant: string;
  /** pino log level. */
  logLevel: LogLevel;
  /** Log line format. Default `pretty` when stdout is a terminal, else `json`. */
  logFormat: LogFormat;
  /** HMAC secret for HS* JWTs (and the key of minted join tokens). When any auth key is set, the dev authenticator is disabled. Default none. */
  authSecret: string | undefined;
  /** PEM public key (RSA, EC, Ed25519) for asymmetric JWTs; given as PEM text or a file path. Default none. */
  authPublicKey: string | undefined;
  /** JWKS URL for asymmetric JWTs (cached; refetched for an unknown `kid`). Default none. */
  authJwksUrl: string | undefined;
  /** Accepted JWT `alg` values. Default: HS256 with a secret, the key's algorithm with a PEM key, RS256/ES256/EdDSA with a JWKS. */
  authAlgorithms: string[] | undefined;
  /** Required JWT `aud`. Default none (not checked). */
  authAudience: string | undefined;
  /** Required JWT `iss`. Default none (not checked). */
  authIssuer: string | undefined;
  /** A token without a `rooms` claim gets no room rights (join tokens must grant them); when false it gets all. */
  authGrantsRequired: boolean;
  /** Lifetime of join tokens minted by `POST /api/tokens/join`, seconds. */
  joinTokenTtlSeconds: number;
  /** Browser origins allowed to open a WebSocket (`https://app.example.com`). Default none: every origin. */
  allowedOrigins: string[];
  /** With an origin allowlist, also accept upgrades without an `Origin` header (native apps, backends). */
  allowMissingOrigin: boolean;
  /**
   * Addresses and CIDR ranges of the proxies in front of the node (load
   * balancers): from a peer in the list, `X-Forwarded-For` names the client
   * for per-address caps and logs (src/net/client-address.ts). Default none:
   * the TCP peer is the client.
   */
  trustedProxies: string[];
  /** Offer permessage-deflate (bounded: no context takeover, `maxFrameBytes` applies to the inflated size). */
  perMessageDeflate: boolean;
  /**
   * Record OpenTelemetry spans for each hop of a message through the globally
   * registered tracer provider (src/tracing/). The CLI sets it when it starts
   * the SDK (`--otel-endpoint`, `OTEL_*`); an embedder sets it after
   * registering an SDK of its own. When false, no span work at all.
   */
  tracing: boolean;
  /** coturn `static-auth-secret`: with `turnUrls`, the welcome carries TURN REST credentials. Default none. */
  turnSecret: string | undefined;
  /** `turn:`/`turns:` URLs the TURN credentials are for. Default none. */
  turnUrls: string[];
  /** Lifetime of TURN credentials, seconds. */
  turnTtlSeconds: number;
  /** Scoped server API keys: `[{key, scopes, name?}]`. Default none. */
  apiKeys: ApiKeyOption[];
  /**
   * Hot-lane Bus. `auto`: Redis when `redisUrl` is set, else memory. `memory`:
   * one process only (refused with `redisUrl`). `redis`: needs `redisUrl`.
   * `rabbitmq`: needs `amqpUrl` and `postgresUrl` (its chat history); the
   * other lanes stay on Redis if set, else per node (docs/architecture.md).
   * Normalized to the driver that runs, never `auto`.
   */
  bus: Exclude<BusDriver, 'auto'>;
  /**
   * Who stores chat with `bus: 'rabbitmq'`. `node`: the node itself
   * (src/history/postgres.ts). `worker`: the chat-store worker run with
   * `--chat-intake`, through the chat intake exchange
   * (src/history/intake-history.ts). Only with `bus: 'rabbitmq'`.
   */
  chatPath: ChatPath;
  /** With `chatPath: 'worker'`: how long a chat publish waits for the worker's answer, ms. */
  chatIntakeTimeoutMs: number;
  /** Redis URL for the hot lane, replay and presence. Default none (in-memory lanes). */
  redisUrl: string | undefined;
  /** `pubsub` (one Redis server, or Sentinel) or `sharded` (Redis Cluster, SPUBLISH/SSUBSCRIBE). */
  redisMode: RedisMode;
  /**
   * Redis Sentinel addresses (`host:port`, IPv6 as `[::1]:26379`): every
   * Redis connection (bus, history, presence, mailbox, sessions, registry)
   * asks them for the master of `redisSentinelName` and follows failovers
   * (src/redis/connection.ts). `redisUrl` then only gives the data nodes'
   * credentials, database and TLS (`rediss:`), and defaults to
   * `redis://{redisSentinelName}`. Not with `redisMode: 'sharded'`.
   */
  redisSentinels: string[];
  /** Master group name the sentinels monitor; required with `redisSentinels`. Default none. */
  redisSentinelName: string | undefined;
  /** Password of the sentinels themselves (the data nodes' is in `redisUrl`). Default none. */
  redisSentinelPassword: string | undefined;
  /** ACL user of the sentinels. Default none. */
  redisSentinelUsername: string | undefined;
  /** Talk TLS to the sentinels (the data nodes use TLS with a `rediss:` URL). */
  redisSentinelTls: boolean;
  /**
   * Replicas that must have a chat message before it is acknowledged:
   * after storing it the node sends `WAIT n`, and publishes and acks the
   * message only when that many replicas have it, so an acked message
   * survives a failover. 0 = ack once the master has it. Pub/Sub mode only.
   * Default 1 with `redisSentinels`, else 0.
   */
  redisWaitReplicas: number;
  /**
   * With `redisWaitReplicas` > 0: wait for every replica online (counted
   * each second), not only that many, so a crashed master cannot be
   * replaced by a replica that lacks an acked message; a lagging replica
   * then delays every chat ack. Default true with `redisSentinels`, else false.
   */
  redisWaitAllReplicas: boolean;
  /**
   * How long a chat publish waits for `redisWaitReplicas`, ms (10-4000);
   * past it the sender is told `outcome_unknown`. A WAIT holds the history
   * connection, so keep it below the connection probe interval.
   */
  redisWaitTimeoutMs: number;
  /** A crashed node's presence entries disappear (with leave events) after this long, ms. */
  presenceTtlMs: number;
  /**
   * Signal mailbox: a user whose last connection closed counts as recently
   * seen for this long, and signals sent to them meanwhile wait this long for
   * a reconnect (acked with `queued: true`), ms. 0 disables the mailbox
   * (such signals get `peer_offline`).
   */
  mailboxTtlMs: number;
  /** AMQP URL for the cold lane. Default none (in-memory event log). */
  amqpUrl: string | undefined;
  /** PostgreSQL URL: the node reads stored chat history from it (`GET /api/rooms/:room/messages`). Default none. */
  postgresUrl: string | undefined;
  /** Idle time after which a room's Redis history expires (and its next use starts a new epoch), ms. */
  historyTtlMs: number;
  /** Redis history bounds per room-name prefix, e.g. `[{"prefix":"support-","maxMessages":5000,"ttlMs":604800000}]`; longest prefix wins. Default none. */
  historyPolicies: HistoryPolicyOption[];
  /** PostgreSQL schema the chat-store worker writes to. */
  postgresSchema: string;
  /** Bearer key for the server HTTP API (`/api/...`); the API answers 404 while none is set. Default none. */
  apiKey: string | undefined;
  /**
   * Pusher-protocol apps (src/config/pusher-apps.ts, docs/pusher.md): each is a
   * tenant reached at `/app/{key}` and `/apps/{id}/...`. Given as an array,
   * JSON text, or the path of a JSON file. Default none (no Pusher endpoint).
   */
  pusherApps: PusherApp[];
  /** ICE servers announced in the welcome frame. Default none (host candidates only). */
  iceServers: IceServer[];
  /** Serve the demo page at `/`. */
  demo: boolean;
  /** Milliseconds graceful shutdown may take before remaining sockets are terminated. */
  shutdownTimeoutMs: number;
  /**
   * Drain on SIGTERM closes connections (1001, reconnect elsewhere) in
   * batches spread over this window, so the other nodes are not hit by every
   * reconnect at once; capped by `shutdownTimeoutMs`. 0 = all at once, ms.
   */
  drainWindowMs: number;
  /** Address other nodes and `nerve status` show for this node (e.g. `http://10.0.0.5:8080`). Default: `http://{host}:{port}` it listens on. */
  advertiseUrl: string | undefined;
  /** Node registry heartbeat interval, ms; an entry expires after 3 missed heartbeats. */
  registryIntervalMs: number;
  /**
   * Every Redis connection (bus, history, presence, mailbox, sessions,
   * registry) is PINGed this often and must answer within it; a silent one
   * is replaced, so a stall is noticed within twice this (docs/operations.md,
   * "Connection probes"). Also the bus canary's period and timeout. 0 turns
   * probes and the canary off, ms.
   */
  probeIntervalMs: number;
  /**
   * Tenant quotas from a JSON file (`{"tenant": {connections?, publishesPerSecond?, signalsPerSecond?, rooms?, storedBytes?}, "*": {...}}`),
   * read at start-up; quotas set with `PUT /api/tenants/{tenant}/quotas` win over it (docs/operations.md, "Tenant quotas").
   * Default none (no quotas).
   */
  tenantQuotasFile: string | undefined;
  /** The file's quotas by tenant (`*`: every other tenant), read by `normalizeOptions`; an embedder may pass them directly. Default none. */
  tenantQuotas: ReadonlyMap<string, TenantQuota>;
  /** How often each node reads the tenant quotas set through the API again and writes its connection counts, ms. */
  quotaRefreshMs: number;
  /** Usage metering interval: one `usage.reported` event per tenant, node and interval, aligned to the clock, ms. */
  usageIntervalMs: number;
  limits: LimitOptions;
}

export type NodeOptionsInput = Partial<Omit<NodeOptions, 'limits' | 'bus' | 'pusherApps'>> & {
  bus?: BusDriver;
  limits?: Partial<LimitOptions>;
  pusherApps?: unknown;
};

export const DEFAULT_LIMITS: LimitOptions = {
  maxFrameBytes: 64 * 1024,
  maxRoomsPerConnection: 32,
  maxRoomIdLength: MAX_ID_LENGTH,
  ratePerSecond: 50,
  rateBurst: 100,
  heartbeatMs: 25_000,
  handshakeTimeoutMs: 10_000,
  historySize: 1000,
  historyOnJoin: 50,
  recoveryLimit: 1000,
  idempotencyWindowMs: 120_000,
  sendBufferSoftBytes: 1024 * 1024,
  sendBufferHardBytes: 8 * 1024 * 1024,
  maxErrorsPer10s: 200,
  roomRatePerSecond: 200,
  roomRateBurst: 400,
  maxConnectionsPerIp: 0,
  maxConnectionsPerUser: 0,
  headersTimeoutMs: 10_000,
  presenceStateMaxBytes: PRESENCE_LIMITS.stateBytes,
  presenceListMax: 1000,
  presenceCountIntervalMs: 1000,
};

/** The fixed defaults of `NodeOptions`; the others are none (empty lists) or a rule given on their field. */
export const NODE_DEFAULTS = {
  port: 8080,
  host: '0.0.0.0',
  env: 'dev',
  service: 'nerve',
  defaultTenant: 'default',
  logLevel: 'info',
  authGrantsRequired: false,
  joinTokenTtlSeconds: 300,
  allowMissingOrigin: false,
  perMessageDeflate: false,
  tracing: false,
  turnTtlSeconds: 86_400,
  bus: 'auto',
  chatPath: 'node',
  chatIntakeTimeoutMs: 5000,
  redisMode: 'pubsub',
  redisSentinelTls: false,
  redisWaitTimeoutMs: 500,
  presenceTtlMs: 10_000,
  mailboxTtlMs: 30_000,
  historyTtlMs: 86_400_000,
  postgresSchema: 'nerve',
  demo: true,
  shutdownTimeoutMs: 10_000,
  drainWindowMs: 10_000,
  registryIntervalMs: 2000,
  probeIntervalMs: 1000,
  quotaRefreshMs: 1000,
  usageIntervalMs: 60_000,
} satisfies NodeOptionsInput;

/** A terminal is a person reading; anything else (a pipe, a file, a log shipper) gets JSON. */
export function defaultLogFormat(): LogFormat {
  return process.stdout.isTTY ? 'pretty' : 'json';
}

/** The limits a client is told about in `welcome`. */
export function publicLimits(limits: LimitOptions): Limits {
  return {
    maxFrameBytes: limits.maxFrameBytes,
    maxRoomsPerConnection: limits.maxRoomsPerConnection,
    maxRoomIdLength: limits.maxRoomIdLength,
    ratePerSecond: limits.ratePerSecond,
    rateBurst: limits.rateBurst,
    heartbeatMs: limits.heartbeatMs,
  };
}
