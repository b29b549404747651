/**
 * Options of one nerve node. Every field has a documented default; one
 * `normalizeOptions` validates everything at start-up and throws a
 * `ConfigError` naming the setting and the accepted values. Environment
 * variables and flags are read only by the CLI (src/cli/settings.ts).
 */
import { hostname } from 'node:os';
import { createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { API_SCOPES, type ApiKeyOption, type ApiScope } from './auth/api-keys.js';
import { JWT_ALGORITHMS } from './auth/jwt.js';
import { parseProxyEntry } from './http/client-address.js';
import { parseSentinelAddress, type RedisSentinelSettings } from './redis-connection.js';
import type { IceServer, Limits } from '../packages/protocol/src/frames.js';
import { MAX_ID_LENGTH, isValidTenantId } from '../packages/protocol/src/ids.js';
import { normalizePusherApps, type PusherApp } from './pusher/apps.js';
import { InvalidQuotaError, parseQuotaFile, parseTenantQuota, type TenantQuota } from './quotas/quotas.js';

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
  /** Milliseconds a socket may stay open before sending `connect`. Default 10000. */
  handshakeTimeoutMs: number;
  /** Chat messages kept per room by the in-memory history. Default 1000. */
  historySize: number;
  /** Chat messages returned by `join` when the client asks for none in particular. Default 50. */
  historyOnJoin: number;
  /** Most messages a resume may return before answering `recovered: false`. Default 1000. */
  recoveryLimit: number;
  /** Window in which a repeated client message id is recognised, ms. Default 120000. */
  idempotencyWindowMs: number;
  /** Send buffer above which droppable (ephemeral) frames are skipped for a socket, bytes. Default 1 MiB. */
  sendBufferSoftBytes: number;
  /** Send buffer above which a socket is closed as a slow consumer (4009), bytes. Default 8 MiB. */
  sendBufferHardBytes: number;
  /** Errors (invalid or rate-limited frames) a connection may cause per 10 s before it is closed with 4008. Default 200. */
  maxErrorsPer10s: number;
  /** Sustained publishes per second into one room, summed over its members on this node (token bucket per room). Default 200. */
  roomRatePerSecond: number;
  /** Burst of the per-room publish bucket. Default 400. */
  roomRateBurst: number;
  /** Open WebSockets per remote IP address on this node; over it upgrades get 429. 0 = no limit. Default 0. */
  maxConnectionsPerIp: number;
  /** Open connections per (tenant, user) on this node; over it `connect` gets `too_many_connections` and close 4011. 0 = no limit. Default 0. */
  maxConnectionsPerUser: number;
  /** Time a new TCP connection has to send complete request headers (slowloris), ms. Default 10000. */
  headersTimeoutMs: number;
}

export interface NodeOptions {
  /** TCP port for HTTP and WebSocket. 0 picks a free port. Default 8080. */
  port: number;
  /** Interface to listen on. Default `0.0.0.0`. */
  host: string;
  /** This node's id, unique in the cluster. Default `{hostname}-{random}`. */
  nodeId: string;
  /** Environment name, the first component of every channel and key name. Default `dev`. */
  env: string;
  /** Service name, the second component of every channel and key name. Default `nerve`. */
  service: string;
  /** Tenant for connections whose credentials name none. Default `default`. */
  defaultTenant: string;
  /** pino log level. Default `info`. */
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
  /** A token without a `rooms` claim gets no room rights (join tokens must grant them). Default false (it gets all). */
  authGrantsRequired: boolean;
  /** Lifetime of join tokens minted by `POST /api/tokens/join`, seconds. Default 300. */
  joinTokenTtlSeconds: number;
  /** Browser origins allowed to open a WebSocket (`https://app.example.com`). Default none: every origin. */
  allowedOrigins: string[];
  /** With an origin allowlist, also accept upgrades without an `Origin` header (native apps, backends). Default false. */
  allowMissingOrigin: boolean;
  /**
   * Addresses and CIDR ranges of the proxies in front of the node (load
   * balancers): from a peer in the list, `X-Forwarded-For` names the client
   * for per-address caps and logs (src/http/client-address.ts). Default none:
   * the TCP peer is the client.
   */
  trustedProxies: string[];
  /** Offer permessage-deflate (bounded: no context takeover, `maxFrameBytes` applies to the inflated size). Default false. */
  perMessageDeflate: boolean;
  /**
   * Record OpenTelemetry spans for each hop of a message through the globally
   * registered tracer provider (src/tracing/). The CLI sets it when it starts
   * the SDK (`--otel-endpoint`, `OTEL_*`); an embedder sets it after
   * registering an SDK of its own. Default false (no span work at all).
   */
  tracing: boolean;
  /** coturn `static-auth-secret`: with `turnUrls`, the welcome carries TURN REST credentials. Default none. */
  turnSecret: string | undefined;
  /** `turn:`/`turns:` URLs the TURN credentials are for. Default none. */
  turnUrls: string[];
  /** Lifetime of TURN credentials, seconds. Default 86400. */
  turnTtlSeconds: number;
  /** Scoped server API keys: `[{key, scopes, name?}]`. Default none. */
  apiKeys: ApiKeyOption[];
  /**
   * Hot-lane Bus. `auto`: Redis when `redisUrl` is set, else memory. `memory`:
   * one process only (refused with `redisUrl`). `redis`: needs `redisUrl`.
   * `rabbitmq`: needs `amqpUrl` and `postgresUrl` (its chat history,
   * src/history/postgres.ts); presence, room sessions and the mailbox stay on
   * Redis when `redisUrl` is set, else they are per node
   * (docs/architecture.md). Normalized to the driver that runs, never
   * `auto`. Default `auto`.
   */
  bus: Exclude<BusDriver, 'auto'>;
  /**
   * Who stores chat with `bus: 'rabbitmq'`. `node`: the node itself
   * (src/history/postgres.ts). `worker`: the chat-store worker run with
   * `--chat-intake`, through the chat intake exchange
   * (src/history/intake-history.ts). Only with `bus: 'rabbitmq'`. Default `node`.
   */
  chatPath: ChatPath;
  /** With `chatPath: 'worker'`: how long a chat publish waits for the worker's answer, ms. Default 5000. */
  chatIntakeTimeoutMs: number;
  /** Redis URL for the hot lane, replay and presence. Default none (in-memory lanes). */
  redisUrl: string | undefined;
  /** `pubsub` (one Redis server, or Sentinel) or `sharded` (Redis Cluster, SPUBLISH/SSUBSCRIBE). Default `pubsub`. */
  redisMode: RedisMode;
  /**
   * Redis Sentinel addresses (`host:port`, IPv6 as `[::1]:26379`): every
   * Redis connection (bus, history, presence, mailbox, sessions, registry)
   * asks them for the master of `redisSentinelName` and follows failovers
   * (src/redis-connection.ts). `redisUrl` then only gives the data nodes'
   * credentials, database and TLS (`rediss:`), and defaults to
   * `redis://{redisSentinelName}`. Not with `redisMode: 'sharded'`.
   * Default none (no Sentinel).
   */
  redisSentinels: string[];
  /** Master group name the sentinels monitor; required with `redisSentinels`. Default none. */
  redisSentinelName: string | undefined;
  /** Password of the sentinels themselves (the data nodes' is in `redisUrl`). Default none. */
  redisSentinelPassword: string | undefined;
  /** ACL user of the sentinels. Default none. */
  redisSentinelUsername: string | undefined;
  /** Talk TLS to the sentinels (the data nodes use TLS with a `rediss:` URL). Default false. */
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
   * connection, so keep it below the connection probe interval. Default 500.
   */
  redisWaitTimeoutMs: number;
  /** A crashed node's presence entries disappear (with leave events) after this long, ms. Default 10000. */
  presenceTtlMs: number;
  /**
   * Signal mailbox: a user whose last connection closed counts as recently
   * seen for this long, and signals sent to them meanwhile wait this long for
   * a reconnect (acked with `queued: true`), ms. 0 disables the mailbox
   * (such signals get `peer_offline`). Default 30000.
   */
  mailboxTtlMs: number;
  /** AMQP URL for the cold lane. Default none (in-memory event log). */
  amqpUrl: string | undefined;
  /** PostgreSQL URL: the node reads stored chat history from it (`GET /api/rooms/:room/messages`). Default none. */
  postgresUrl: string | undefined;
  /** Idle time after which a room's Redis history expires (and its next use starts a new epoch), ms. Default 86400000 (one day). */
  historyTtlMs: number;
  /** Redis history bounds per room-name prefix, e.g. `[{"prefix":"support-","maxMessages":5000,"ttlMs":604800000}]`; longest prefix wins. Default none. */
  historyPolicies: HistoryPolicyOption[];
  /** PostgreSQL schema the chat-store worker writes to. Default `nerve`. */
  postgresSchema: string;
  /** Bearer key for the server HTTP API (`/api/...`); the API answers 404 while none is set. Default none. */
  apiKey: string | undefined;
  /**
   * Pusher-protocol apps (src/pusher/apps.ts, docs/pusher.md): each is a
   * tenant reached at `/app/{key}` and `/apps/{id}/...`. Given as an array,
   * JSON text, or the path of a JSON file. Default none (no Pusher endpoint).
   */
  pusherApps: PusherApp[];
  /** ICE servers announced in the welcome frame. Default none (host candidates only). */
  iceServers: IceServer[];
  /** Serve the demo page at `/`. Default true. */
  demo: boolean;
  /** Milliseconds graceful shutdown may take before remaining sockets are terminated. Default 10000. */
  shutdownTimeoutMs: number;
  /**
   * Drain on SIGTERM closes connections (1001, reconnect elsewhere) in
   * batches spread over this window, so the other nodes are not hit by every
   * reconnect at once; capped by `shutdownTimeoutMs`. 0 = all at once, ms.
   * Default 10000.
   */
  drainWindowMs: number;
  /** Address other nodes and `nerve status` show for this node (e.g. `http://10.0.0.5:8080`). Default: `http://{host}:{port}` it listens on. */
  advertiseUrl: string | undefined;
  /** Node registry heartbeat interval, ms; an entry expires after 3 missed heartbeats. Default 2000. */
  registryIntervalMs: number;
  /**
   * Every Redis connection (bus, history, presence, mailbox, sessions,
   * registry) is PINGed this often and must answer within it; a silent one
   * is replaced, so a stall is noticed within twice this (docs/operations.md,
   * "Connection probes"). Also the bus canary's period and timeout. 0 turns
   * probes and the canary off, ms. Default 1000.
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
  /** How often each node reads the tenant quotas set through the API again and writes its connection counts, ms. Default 1000. */
  quotaRefreshMs: number;
  /** Usage metering interval: one `usage.reported` event per tenant, node and interval, aligned to the clock, ms. Default 60000. */
  usageIntervalMs: number;
  limits: LimitOptions;
}

export type NodeOptionsInput = Partial<Omit<NodeOptions, 'limits' | 'bus' | 'pusherApps'>> & { bus?: BusDriver; limits?: Partial<LimitOptions>; pusherApps?: unknown };

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
};

/** Thrown for bad configuration; `setting` names the option, `accepted` what it takes. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'config_invalid';
  constructor(
    readonly setting: string,
    readonly accepted: string,
    readonly received: unknown,
  ) {
    super(`invalid setting ${setting}: expected ${accepted}, got ${formatReceived(received)}`);
  }
}

function formatReceived(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function integer(setting: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(setting, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

const NAME_COMPONENT = /^[A-Za-z0-9._~-]{1,64}$/;

function nameComponent(setting: string, value: string): string {
  if (!NAME_COMPONENT.test(value)) throw new ConfigError(setting, '1-64 characters of A-Z a-z 0-9 . _ ~ -', value);
  return value;
}

function url(setting: string, value: string | undefined, protocols: string[]): string | undefined {
  if (value === undefined || value === '') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(setting, `a URL (${protocols.join(', ')})`, value);
  }
  if (!protocols.includes(parsed.protocol)) throw new ConfigError(setting, `a URL (${protocols.join(', ')})`, value);
  return value;
}

function oneOf<T extends string>(setting: string, value: T, values: readonly T[]): T {
  if (!values.includes(value)) throw new ConfigError(setting, values.join(' | '), value);
  return value;
}

function historyPolicies(value: unknown): HistoryPolicyOption[] {
  const accepted = 'a JSON array of {prefix, maxMessages?, ttlMs?} with a room-id prefix, maxMessages 0-1000000, ttlMs >= 1000';
  if (!Array.isArray(value)) throw new ConfigError('historyPolicies', accepted, JSON.stringify(value));
  return value.map((item: unknown) => {
    const policy = item as Partial<HistoryPolicyOption> | null;
    const ok =
      typeof policy === 'object' &&
      policy !== null &&
      typeof policy.prefix === 'string' &&
      /^[A-Za-z0-9._~-]{0,128}$/.test(policy.prefix) &&
      (policy.maxMessages === undefined || (Number.isInteger(policy.maxMessages) && policy.maxMessages >= 0 && policy.maxMessages <= 1_000_000)) &&
      (policy.ttlMs === undefined || (Number.isInteger(policy.ttlMs) && policy.ttlMs >= 1000));
    if (!ok) throw new ConfigError('historyPolicies', accepted, JSON.stringify(item));
    return { prefix: policy.prefix!, ...(policy.maxMessages === undefined ? {} : { maxMessages: policy.maxMessages }), ...(policy.ttlMs === undefined ? {} : { ttlMs: policy.ttlMs }) };
  });
}

function pgIdentifier(setting: string, value: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) throw new ConfigError(setting, 'a PostgreSQL identifier: a-z 0-9 _, not starting with a digit', value);
  return value;
}

function apiKeys(value: unknown): ApiKeyOption[] {
  const accepted = `a JSON array of {key (>= 24 characters), scopes: [${API_SCOPES.join(', ')}], name?, tenants?: [tenant ids]}`;
  if (!Array.isArray(value)) throw new ConfigError('apiKeys', accepted, '<hidden>');
  return value.map((item: unknown, index) => {
    const entry = item as Partial<ApiKeyOption> | null;
    const ok =
      typeof entry === 'object' &&
      entry !== null &&
      typeof entry.key === 'string' &&
      Buffer.byteLength(entry.key) >= 24 &&
      Array.isArray(entry.scopes) &&
      entry.scopes.every((scope) => (API_SCOPES as readonly string[]).includes(scope)) &&
      (entry.name === undefined || (typeof entry.name === 'string' && NAME_COMPONENT.test(entry.name))) &&
      (entry.tenants === undefined || (Array.isArray(entry.tenants) && entry.tenants.length > 0 && entry.tenants.every((tenant) => typeof tenant === 'string' && isValidTenantId(tenant))));
    // Never echo a key into an error message.
    if (!ok) throw new ConfigError(`apiKeys[${index}]`, accepted, '<hidden>');
    return {
      key: entry.key!,
      scopes: [...new Set(entry.scopes as ApiScope[])],
      ...(entry.name === undefined ? {} : { name: entry.name }),
      ...(entry.tenants === undefined ? {} : { tenants: [...new Set(entry.tenants)] }),
    };
  });
}

function origins(value: unknown): string[] {
  const accepted = 'a list of origins: scheme://host[:port], no path';
  if (!Array.isArray(value)) throw new ConfigError('allowedOrigins', accepted, JSON.stringify(value));
  return value.map((item: unknown) => {
    let parsed: URL;
    try {
      parsed = new URL(String(item));
    } catch {
      throw new ConfigError('allowedOrigins', accepted, item);
    }
    if (parsed.origin === 'null' || parsed.pathname !== '/' || parsed.search || parsed.hash) throw new ConfigError('allowedOrigins', accepted, item);
    return parsed.origin;
  });
}

function publicKey(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  let pem = value;
  if (!value.includes('-----BEGIN')) {
    try {
      pem = readFileSync(value, 'utf8');
    } catch {
      throw new ConfigError('authPublicKey', 'a PEM public key, or the path of a readable PEM file', value);
    }
  }
  try {
    const key = createPublicKey(pem);
    if (!['rsa', 'rsa-pss', 'ec', 'ed25519'].includes(key.asymmetricKeyType ?? '')) throw new Error('type');
  } catch {
    throw new ConfigError('authPublicKey', 'a PEM public key (RSA, EC or Ed25519)', value.includes('-----BEGIN') ? '<pem>' : value);
  }
  return pem;
}

function algorithms(value: string[] | undefined, keys: { secret: boolean; asymmetric: boolean }): string[] | undefined {
  if (value === undefined || value.length === 0) return undefined;
  for (const alg of value) {
    const known = JWT_ALGORITHMS.includes(alg);
    const keyed = alg.startsWith('HS') ? keys.secret : keys.asymmetric;
    if (!known || !keyed) {
      throw new ConfigError('authAlgorithms', `algorithms of the configured keys (${JWT_ALGORITHMS.join(', ')}; HS* need --auth-secret, the others --auth-public-key or --auth-jwks-url)`, alg);
    }
  }
  return [...new Set(value)];
}

function optionalText(setting: string, value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length > 512) throw new ConfigError(setting, 'at most 512 characters', value);
  return value;
}

function apiKey(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (Buffer.byteLength(value) < 24) throw new ConfigError('apiKey', 'at least 24 characters', '<hidden>');
  return value;
}

/** The Bus that runs, from the `bus` setting and the URLs given; incoherent combinations are refused. */
function busDriver(value: BusDriver, redisUrl: string | undefined, amqpUrl: string | undefined, postgresUrl: string | undefined): Exclude<BusDriver, 'auto'> {
  const driver = oneOf('bus', value, BUS_DRIVERS);
  switch (driver) {
    case 'auto':
      return redisUrl ? 'redis' : 'memory';
    case 'redis':
      if (!redisUrl) throw new ConfigError('bus', 'redis only with --redis-url', driver);
      return driver;
    case 'rabbitmq':
      if (!amqpUrl) throw new ConfigError('bus', 'rabbitmq only with --amqp-url', driver);
      // Chat offsets must be assigned in one place every node shares (src/history/postgres.ts).
      if (!postgresUrl) throw new ConfigError('bus', 'rabbitmq only with --postgres-url (the chat history of this mode lives there)', driver);
      return driver;
    case 'memory':
      // Redis history and presence publish on Redis channels that a memory bus never hears.
      if (redisUrl) throw new ConfigError('bus', 'memory only without --redis-url (use auto, redis or rabbitmq)', driver);
      return driver;
  }
}

function chatPath(value: ChatPath, bus: Exclude<BusDriver, 'auto'>): ChatPath {
  const path = oneOf('chatPath', value, CHAT_PATHS);
  // Only the RabbitMQ mode stores chat in PostgreSQL; Redis and memory histories store it where they publish it.
  if (path === 'worker' && bus !== 'rabbitmq') throw new ConfigError('chatPath', 'worker only with --bus rabbitmq', path);
  return path;
}

/**
 * Every API key secret once: the keyring takes the first match, so a scoped
 * or tenant-limited key sharing its secret with another would silently act
 * as that one.
 */
function distinctSecrets(key: string | undefined, keys: readonly ApiKeyOption[]): void {
  const secrets = [...(key === undefined ? [] : [key]), ...keys.map((entry) => entry.key)];
  if (new Set(secrets).size !== secrets.length) throw new ConfigError('apiKeys', 'each key secret once (--api-key and --api-keys included)', '<hidden>');
}

function trustedProxies(value: unknown): string[] {
  const accepted = 'IPv4 / IPv6 addresses or CIDR ranges (10.0.0.0/8, fd00::/8)';
  if (!Array.isArray(value)) throw new ConfigError('trustedProxies', accepted, JSON.stringify(value));
  for (const item of value) {
    const entry = typeof item === 'string' ? parseProxyEntry(item) : undefined;
    if (entry === undefined) throw new ConfigError('trustedProxies', accepted, String(item));
    // Every peer trusted means every client picks its own address: list the proxies instead.
    if (entry.prefix === 0) throw new ConfigError('trustedProxies', `${accepted}, not every address (/0)`, String(item));
  }
  return value as string[];
}

/** The Sentinel settings, validated; undefined without sentinels (the other sentinel settings are then refused). */
function redisSentinel(input: NodeOptionsInput): { sentinels: string[]; name: string; password: string | undefined; username: string | undefined; tls: boolean } | undefined {
  const sentinels = input.redisSentinels ?? [];
  if (!Array.isArray(sentinels) || sentinels.some((entry) => typeof entry !== 'string' || parseSentinelAddress(entry) === undefined)) {
    throw new ConfigError('redisSentinels', 'a list of host:port ([v6]:port)', JSON.stringify(sentinels));
  }
  const name = input.redisSentinelName === '' ? undefined : input.redisSentinelName;
  const password = input.redisSentinelPassword === '' ? undefined : input.redisSentinelPassword;
  const username = input.redisSentinelUsername === '' ? undefined : input.redisSentinelUsername;
  if (sentinels.length === 0) {
    if (name !== undefined || password !== undefined || username !== undefined || input.redisSentinelTls) {
      throw new ConfigError('redisSentinels', 'sentinel addresses when a sentinel name, password, user or TLS is set', '(none)');
    }
    return undefined;
  }
  if (name === undefined || !/^[A-Za-z0-9._-]{1,128}$/.test(name)) {
    throw new ConfigError('redisSentinelName', 'the master name the sentinels monitor (A-Z a-z 0-9 . _ -, required with --redis-sentinels)', name);
  }
  return { sentinels: [...new Set(sentinels.map((entry) => entry.trim()))], name, password, username, tls: input.redisSentinelTls ?? false };
}

/** The Sentinel settings of normalized options, for src/redis-connection.ts; undefined without sentinels. */
export function redisSentinelSettings(options: NodeOptions): RedisSentinelSettings | undefined {
  if (options.redisSentinels.length === 0 || options.redisSentinelName === undefined) return undefined;
  return {
    sentinels: options.redisSentinels.map((entry) => parseSentinelAddress(entry)!),
    name: options.redisSentinelName,
    password: options.redisSentinelPassword,
    username: options.redisSentinelUsername,
    tls: options.redisSentinelTls,
  };
}

export function defaultNodeId(): string {
  return `${hostname().replace(/[^A-Za-z0-9._~-]/g, '-').slice(0, 40)}-${randomBytes(3).toString('hex')}`;
}

export function normalizeOptions(input: NodeOptionsInput = {}): NodeOptions {
  const limitsInput = { ...DEFAULT_LIMITS, ...input.limits };
  const limits: LimitOptions = {
    maxFrameBytes: integer('maxFrameBytes', limitsInput.maxFrameBytes, 1024, 16 * 1024 * 1024),
    maxRoomsPerConnection: integer('maxRoomsPerConnection', limitsInput.maxRoomsPerConnection, 1, 10_000),
    maxRoomIdLength: integer('maxRoomIdLength', limitsInput.maxRoomIdLength, 1, MAX_ID_LENGTH),
    ratePerSecond: integer('ratePerSecond', limitsInput.ratePerSecond, 1, 1_000_000),
    rateBurst: integer('rateBurst', limitsInput.rateBurst, 1, 1_000_000),
    heartbeatMs: integer('heartbeatMs', limitsInput.heartbeatMs, 100, 600_000),
    handshakeTimeoutMs: integer('handshakeTimeoutMs', limitsInput.handshakeTimeoutMs, 100, 600_000),
    historySize: integer('historySize', limitsInput.historySize, 0, 1_000_000),
    historyOnJoin: integer('historyOnJoin', limitsInput.historyOnJoin, 0, 1000),
    recoveryLimit: integer('recoveryLimit', limitsInput.recoveryLimit, 1, 100_000),
    idempotencyWindowMs: integer('idempotencyWindowMs', limitsInput.idempotencyWindowMs, 0, 86_400_000),
    sendBufferSoftBytes: integer('sendBufferSoftBytes', limitsInput.sendBufferSoftBytes, 1024, 1024 ** 3),
    sendBufferHardBytes: integer('sendBufferHardBytes', limitsInput.sendBufferHardBytes, 1024, 1024 ** 3),
    maxErrorsPer10s: integer('maxErrorsPer10s', limitsInput.maxErrorsPer10s, 1, 1_000_000),
    roomRatePerSecond: integer('roomRatePerSecond', limitsInput.roomRatePerSecond, 1, 1_000_000),
    roomRateBurst: integer('roomRateBurst', limitsInput.roomRateBurst, 1, 1_000_000),
    maxConnectionsPerIp: integer('maxConnectionsPerIp', limitsInput.maxConnectionsPerIp, 0, 10_000_000),
    maxConnectionsPerUser: integer('maxConnectionsPerUser', limitsInput.maxConnectionsPerUser, 0, 10_000_000),
    headersTimeoutMs: integer('headersTimeoutMs', limitsInput.headersTimeoutMs, 100, 600_000),
  };
  if (limits.sendBufferHardBytes < limits.sendBufferSoftBytes) {
    throw new ConfigError('sendBufferHardBytes', `at least sendBufferSoftBytes (${limits.sendBufferSoftBytes})`, limits.sendBufferHardBytes);
  }
  if (limits.historyOnJoin > limits.historySize) limits.historyOnJoin = limits.historySize;

  const logLevel = input.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('logLevel', LOG_LEVELS.join(' | '), logLevel);
  // A terminal is a person reading; anything else (a pipe, a file, a log shipper) gets JSON.
  const logFormat = input.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json');
  if (!LOG_FORMATS.includes(logFormat)) throw new ConfigError('logFormat', LOG_FORMATS.join(' | '), logFormat);
  const host = input.host ?? '0.0.0.0';
  if (host.length === 0) throw new ConfigError('host', 'an interface address or host name', host);
  const authSecret = input.authSecret === '' ? undefined : input.authSecret;
  if (authSecret !== undefined && Buffer.byteLength(authSecret) < 32) {
    throw new ConfigError('authSecret', 'at least 32 bytes (HS256 needs a key as long as the hash)', '<hidden>');
  }
  const authPublicKey = publicKey(input.authPublicKey);
  const authJwksUrl = url('authJwksUrl', input.authJwksUrl, ['https:', 'http:']);
  if (authPublicKey && authJwksUrl) throw new ConfigError('authJwksUrl', 'not both --auth-public-key and --auth-jwks-url', authJwksUrl);
  const turnSecret = input.turnSecret === '' ? undefined : input.turnSecret;
  const turnUrls = input.turnUrls ?? [];
  if (!Array.isArray(turnUrls) || turnUrls.some((u) => typeof u !== 'string' || !/^turns?:/.test(u))) {
    throw new ConfigError('turnUrls', 'a list of turn: or turns: URLs', JSON.stringify(turnUrls));
  }
  if ((turnSecret === undefined) !== (turnUrls.length === 0)) {
    throw new ConfigError('turnSecret', 'both --turn-secret and --turn-urls, or neither', turnSecret === undefined ? '(no secret)' : '(no URLs)');
  }
  const iceServers = input.iceServers ?? [];
  for (const server of iceServers) {
    const urls = Array.isArray(server.urls) ? server.urls : [server.urls];
    if (urls.length === 0 || urls.some((u) => typeof u !== 'string' || !/^(stun|stuns|turn|turns):/.test(u))) {
      throw new ConfigError('iceServers', 'a JSON array of {urls: "stun:..." | "turn:...", username?, credential?}', JSON.stringify(server));
    }
  }

  const amqpUrl = url('amqpUrl', input.amqpUrl, ['amqp:', 'amqps:']);
  const postgresUrl = url('postgresUrl', input.postgresUrl, ['postgres:', 'postgresql:']);
  const sentinel = redisSentinel(input);
  const redisUrl = url('redisUrl', input.redisUrl, ['redis:', 'rediss:']) ?? (sentinel ? `redis://${sentinel.name}` : undefined);
  const redisMode = oneOf('redisMode', input.redisMode ?? 'pubsub', REDIS_MODES);
  // Sentinel watches one master; a Redis Cluster fails over by itself.
  if (sentinel && redisMode === 'sharded') throw new ConfigError('redisSentinels', 'no sentinels with --redis-mode sharded (Redis Cluster fails over by itself)', input.redisSentinels?.join(','));
  const redisWaitReplicas = integer('redisWaitReplicas', input.redisWaitReplicas ?? (sentinel ? 1 : 0), 0, 16);
  if (redisWaitReplicas > 0 && redisMode === 'sharded') throw new ConfigError('redisWaitReplicas', '0 with --redis-mode sharded', redisWaitReplicas);
  const bus = busDriver(input.bus ?? 'auto', redisUrl, amqpUrl, postgresUrl);
  const scopedKeys = apiKeys(input.apiKeys ?? []);
  const allScopesKey = apiKey(input.apiKey);
  distinctSecrets(allScopesKey, scopedKeys);

  return {
    port: integer('port', input.port ?? 8080, 0, 65_535),
    host,
    nodeId: nameComponent('nodeId', input.nodeId ?? defaultNodeId()),
    env: nameComponent('env', input.env ?? 'dev'),
    service: nameComponent('service', input.service ?? 'nerve'),
    defaultTenant: nameComponent('defaultTenant', input.defaultTenant ?? 'default'),
    logLevel,
    logFormat,
    authSecret,
    authPublicKey,
    authJwksUrl,
    authAlgorithms: algorithms(input.authAlgorithms, { secret: authSecret !== undefined, asymmetric: authPublicKey !== undefined || authJwksUrl !== undefined }),
    authAudience: optionalText('authAudience', input.authAudience),
    authIssuer: optionalText('authIssuer', input.authIssuer),
    authGrantsRequired: input.authGrantsRequired ?? false,
    joinTokenTtlSeconds: integer('joinTokenTtlSeconds', input.joinTokenTtlSeconds ?? 300, 10, 86_400 * 30),
    allowedOrigins: origins(input.allowedOrigins ?? []),
    allowMissingOrigin: input.allowMissingOrigin ?? false,
    trustedProxies: trustedProxies(input.trustedProxies ?? []),
    perMessageDeflate: input.perMessageDeflate ?? false,
    tracing: input.tracing ?? false,
    turnSecret,
    turnUrls,
    turnTtlSeconds: integer('turnTtlSeconds', input.turnTtlSeconds ?? 86_400, 60, 86_400 * 30),
    apiKeys: scopedKeys,
    bus,
    chatPath: chatPath(input.chatPath ?? 'node', bus),
    chatIntakeTimeoutMs: integer('chatIntakeTimeoutMs', input.chatIntakeTimeoutMs ?? 5000, 100, 600_000),
    redisUrl,
    redisMode,
    redisSentinels: sentinel?.sentinels ?? [],
    redisSentinelName: sentinel?.name,
    redisSentinelPassword: sentinel?.password,
    redisSentinelUsername: sentinel?.username,
    redisSentinelTls: sentinel?.tls ?? false,
    redisWaitReplicas,
    redisWaitAllReplicas: redisWaitReplicas > 0 && (input.redisWaitAllReplicas ?? sentinel !== undefined),
    // Below the script connections' 5 s command timeout, which would otherwise cut the WAIT off.
    redisWaitTimeoutMs: integer('redisWaitTimeoutMs', input.redisWaitTimeoutMs ?? 500, 10, 4000),
    presenceTtlMs: integer('presenceTtlMs', input.presenceTtlMs ?? 10_000, 1000, 600_000),
    mailboxTtlMs: integer('mailboxTtlMs', input.mailboxTtlMs ?? 30_000, 0, 600_000),
    amqpUrl,
    postgresUrl,
    postgresSchema: pgIdentifier('postgresSchema', input.postgresSchema ?? 'nerve'),
    historyTtlMs: integer('historyTtlMs', input.historyTtlMs ?? 86_400_000, 1000, 365 * 86_400_000),
    historyPolicies: historyPolicies(input.historyPolicies ?? []),
    pusherApps: normalizePusherApps(input.pusherApps),
    apiKey: allScopesKey,
    iceServers,
    demo: input.demo ?? true,
    shutdownTimeoutMs: integer('shutdownTimeoutMs', input.shutdownTimeoutMs ?? 10_000, 0, 600_000),
    drainWindowMs: integer('drainWindowMs', input.drainWindowMs ?? 10_000, 0, 600_000),
    advertiseUrl: url('advertiseUrl', input.advertiseUrl, ['http:', 'https:']),
    registryIntervalMs: integer('registryIntervalMs', input.registryIntervalMs ?? 2000, 100, 60_000),
    probeIntervalMs: probeInterval(input.probeIntervalMs ?? 1000),
    tenantQuotasFile: input.tenantQuotasFile === '' ? undefined : input.tenantQuotasFile,
    tenantQuotas: tenantQuotas(input.tenantQuotasFile, input.tenantQuotas),
    quotaRefreshMs: integer('quotaRefreshMs', input.quotaRefreshMs ?? 1000, 100, 60_000),
    usageIntervalMs: integer('usageIntervalMs', input.usageIntervalMs ?? 60_000, 1000, 86_400_000),
    limits,
  };
}

/** The quotas of `--tenant-quotas` (or given as a map), read and validated now so a bad file stops start-up. */
function tenantQuotas(file: string | undefined, given: ReadonlyMap<string, TenantQuota> | undefined): Map<string, TenantQuota> {
  const accepted = 'a JSON file {"tenant": {connections?, publishesPerSecond?, signalsPerSecond?, rooms?, storedBytes?}} of integers >= 0';
  try {
    if (given !== undefined) return parseQuotaFile(Object.fromEntries([...given].map(([tenant, quota]) => [tenant, parseTenantQuota(quota)])));
  } catch (error) {
    throw new ConfigError('tenantQuotas', accepted, error instanceof InvalidQuotaError ? error.field : '?');
  }
  if (file === undefined || file === '') return new Map();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError('tenantQuotasFile', `${accepted} (the file cannot be read)`, file);
  }
  try {
    return parseQuotaFile(JSON.parse(text));
  } catch (error) {
    throw new ConfigError('tenantQuotasFile', error instanceof InvalidQuotaError ? `${accepted}; ${error.message}` : accepted, file);
  }
}

/** 0 (off) or 100 to 60000 ms: a shorter probe would fail on a busy but healthy Redis. */
function probeInterval(value: number): number {
  if (value === 0) return 0;
  return integer('probeIntervalMs', value, 100, 60_000);
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
