/**
 * `normalizeOptions`: every option checked once, at start-up, into the
 * `NodeOptions` a node runs with; a bad one throws a `ConfigError` naming it.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseSentinelAddress, type RedisSentinelSettings } from '../redis/connection.js';
import { MAX_ID_LENGTH } from '../../packages/protocol/src/ids.js';
import { normalizePusherApps } from './pusher-apps.js';
import { ConfigError } from './errors.js';
import { algorithms, apiKey, apiKeys, distinctSecrets, historyPolicies, iceServers, origins, publicKey, tenantQuotas, trustedProxies } from './fields.js';
import {
  BUS_DRIVERS,
  CHAT_PATHS,
  DEFAULT_LIMITS,
  defaultLogFormat,
  LOG_FORMATS,
  LOG_LEVELS,
  NODE_DEFAULTS,
  REDIS_MODES,
  type BusDriver,
  type ChatPath,
  type LimitOptions,
  type NodeOptions,
  type NodeOptionsInput,
} from './options.js';
import { integer, nameComponent, oneOf, optionalText, pgIdentifier, url } from './validate.js';

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
    presenceStateMaxBytes: integer('presenceStateMaxBytes', limitsInput.presenceStateMaxBytes, 2, 65_536),
    presenceListMax: integer('presenceListMax', limitsInput.presenceListMax, 0, 1_000_000),
    presenceCountIntervalMs: integer('presenceCountIntervalMs', limitsInput.presenceCountIntervalMs, 10, 60_000),
  };
  if (limits.sendBufferHardBytes < limits.sendBufferSoftBytes) {
    throw new ConfigError('sendBufferHardBytes', `at least sendBufferSoftBytes (${limits.sendBufferSoftBytes})`, limits.sendBufferHardBytes);
  }
  if (limits.historyOnJoin > limits.historySize) limits.historyOnJoin = limits.historySize;

  const logLevel = input.logLevel ?? NODE_DEFAULTS.logLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('logLevel', LOG_LEVELS.join(' | '), logLevel);
  const logFormat = input.logFormat ?? defaultLogFormat();
  if (!LOG_FORMATS.includes(logFormat)) throw new ConfigError('logFormat', LOG_FORMATS.join(' | '), logFormat);
  const host = input.host ?? NODE_DEFAULTS.host;
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

  const amqpUrl = url('amqpUrl', input.amqpUrl, ['amqp:', 'amqps:']);
  const postgresUrl = url('postgresUrl', input.postgresUrl, ['postgres:', 'postgresql:']);
  const sentinel = redisSentinel(input);
  const redisUrl = url('redisUrl', input.redisUrl, ['redis:', 'rediss:']) ?? (sentinel ? `redis://${sentinel.name}` : undefined);
  const redisMode = oneOf('redisMode', input.redisMode ?? NODE_DEFAULTS.redisMode, REDIS_MODES);
  // Sentinel watches one master; a Redis Cluster fails over by itself.
  if (sentinel && redisMode === 'sharded')
    throw new ConfigError('redisSentinels', 'no sentinels with --redis-mode sharded (Redis Cluster fails over by itself)', input.redisSentinels?.join(','));
  const redisWaitReplicas = integer('redisWaitReplicas', input.redisWaitReplicas ?? (sentinel ? 1 : 0), 0, 16);
  if (redisWaitReplicas > 0 && redisMode === 'sharded') throw new ConfigError('redisWaitReplicas', '0 with --redis-mode sharded', redisWaitReplicas);
  const bus = busDriver(input.bus ?? NODE_DEFAULTS.bus, redisUrl, amqpUrl, postgresUrl);
  const scopedKeys = apiKeys(input.apiKeys ?? []);
  const allScopesKey = apiKey(input.apiKey);
  distinctSecrets(allScopesKey, scopedKeys);

  return {
    port: integer('port', input.port ?? NODE_DEFAULTS.port, 0, 65_535),
    host,
    nodeId: nameComponent('nodeId', input.nodeId ?? defaultNodeId()),
    env: nameComponent('env', input.env ?? NODE_DEFAULTS.env),
    service: nameComponent('service', input.service ?? NODE_DEFAULTS.service),
    defaultTenant: nameComponent('defaultTenant', input.defaultTenant ?? NODE_DEFAULTS.defaultTenant),
    logLevel,
    logFormat,
    authSecret,
    authPublicKey,
    authJwksUrl,
    authAlgorithms: algorithms(input.authAlgorithms, {
      secret: authSecret !== undefined,
      asymmetric: authPublicKey !== undefined || authJwksUrl !== undefined,
    }),
    authAudience: optionalText('authAudience', input.authAudience),
    authIssuer: optionalText('authIssuer', input.authIssuer),
    authGrantsRequired: input.authGrantsRequired ?? NODE_DEFAULTS.authGrantsRequired,
    joinTokenTtlSeconds: integer('joinTokenTtlSeconds', input.joinTokenTtlSeconds ?? NODE_DEFAULTS.joinTokenTtlSeconds, 10, 86_400 * 30),
    allowedOrigins: origins(input.allowedOrigins ?? []),
    allowMissingOrigin: input.allowMissingOrigin ?? NODE_DEFAULTS.allowMissingOrigin,
    trustedProxies: trustedProxies(input.trustedProxies ?? []),
    perMessageDeflate: input.perMessageDeflate ?? NODE_DEFAULTS.perMessageDeflate,
    tracing: input.tracing ?? NODE_DEFAULTS.tracing,
    turnSecret,
    turnUrls,
    turnTtlSeconds: integer('turnTtlSeconds', input.turnTtlSeconds ?? NODE_DEFAULTS.turnTtlSeconds, 60, 86_400 * 30),
    apiKeys: scopedKeys,
    bus,
    chatPath: chatPath(input.chatPath ?? NODE_DEFAULTS.chatPath, bus),
    chatIntakeTimeoutMs: integer('chatIntakeTimeoutMs', input.chatIntakeTimeoutMs ?? NODE_DEFAULTS.chatIntakeTimeoutMs, 100, 600_000),
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
    redisWaitTimeoutMs: integer('redisWaitTimeoutMs', input.redisWaitTimeoutMs ?? NODE_DEFAULTS.redisWaitTimeoutMs, 10, 4000),
    presenceTtlMs: integer('presenceTtlMs', input.presenceTtlMs ?? NODE_DEFAULTS.presenceTtlMs, 1000, 600_000),
    mailboxTtlMs: integer('mailboxTtlMs', input.mailboxTtlMs ?? NODE_DEFAULTS.mailboxTtlMs, 0, 600_000),
    amqpUrl,
    postgresUrl,
    postgresSchema: pgIdentifier('postgresSchema', input.postgresSchema ?? NODE_DEFAULTS.postgresSchema),
    historyTtlMs: integer('historyTtlMs', input.historyTtlMs ?? NODE_DEFAULTS.historyTtlMs, 1000, 365 * 86_400_000),
    historyPolicies: historyPolicies(input.historyPolicies ?? []),
    pusherApps: normalizePusherApps(input.pusherApps),
    apiKey: allScopesKey,
    iceServers: iceServers(input.iceServers ?? []),
    demo: input.demo ?? NODE_DEFAULTS.demo,
    shutdownTimeoutMs: integer('shutdownTimeoutMs', input.shutdownTimeoutMs ?? NODE_DEFAULTS.shutdownTimeoutMs, 0, 600_000),
    drainWindowMs: integer('drainWindowMs', input.drainWindowMs ?? NODE_DEFAULTS.drainWindowMs, 0, 600_000),
    advertiseUrl: url('advertiseUrl', input.advertiseUrl, ['http:', 'https:']),
    registryIntervalMs: integer('registryIntervalMs', input.registryIntervalMs ?? NODE_DEFAULTS.registryIntervalMs, 100, 60_000),
    probeIntervalMs: probeInterval(input.probeIntervalMs ?? NODE_DEFAULTS.probeIntervalMs),
    tenantQuotasFile: input.tenantQuotasFile === '' ? undefined : input.tenantQuotasFile,
    tenantQuotas: tenantQuotas(input.tenantQuotasFile, input.tenantQuotas),
    quotaRefreshMs: integer('quotaRefreshMs', input.quotaRefreshMs ?? NODE_DEFAULTS.quotaRefreshMs, 100, 60_000),
    usageIntervalMs: integer('usageIntervalMs', input.usageIntervalMs ?? NODE_DEFAULTS.usageIntervalMs, 1000, 86_400_000),
    limits,
  };
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

/** The Sentinel settings, validated; undefined without sentinels (the other sentinel settings are then refused). */
function redisSentinel(
  input: NodeOptionsInput,
): { sentinels: string[]; name: string; password: string | undefined; username: string | undefined; tls: boolean } | undefined {
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
  return {
    sentinels: [...new Set(sentinels.map((entry) => entry.trim()))],
    name,
    password,
    username,
    tls: input.redisSentinelTls ?? NODE_DEFAULTS.redisSentinelTls,
  };
}

/** The Sentinel settings of normalized options, for src/redis/connection.ts; undefined without sentinels. */
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
  return `${hostname()
    .replace(/[^A-Za-z0-9._~-]/g, '-')
    .slice(0, 40)}-${randomBytes(3).toString('hex')}`;
}

/** 0 (off) or 100 to 60000 ms: a shorter probe would fail on a busy but healthy Redis. */
function probeInterval(value: number): number {
  if (value === 0) return 0;
  return integer('probeIntervalMs', value, 100, 60_000);
}
