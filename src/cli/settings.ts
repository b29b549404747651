/**
 * Every `nerve serve` setting, as a flag and an environment variable. This
 * table is the single source for parsing, `--help` and the README's
 * configuration table; fixed defaults are read from src/config/options.ts.
 */
import { API_SCOPES } from '../auth/api-keys.js';
import { ConfigError } from '../config/errors.js';
import { integer } from '../config/validate.js';
import {
  BUS_DRIVERS,
  CHAT_PATHS,
  DEFAULT_LIMITS,
  LOG_FORMATS,
  LOG_LEVELS,
  NODE_DEFAULTS,
  REDIS_MODES,
  type LimitOptions,
  type NodeOptionsInput,
} from '../config/options.js';

/** `list`: comma-separated strings (empty items dropped). */
type Kind = 'int' | 'string' | 'bool' | 'json' | 'enum' | 'list';

interface Setting {
  flag: string;
  env: string;
  /** Option key; limits are nested under `limits`. */
  key: string;
  limit?: boolean;
  /** A setting of the command line itself (e.g. `--nodes`), never part of `NodeOptions`. */
  cli?: boolean;
  kind: Kind;
  values?: readonly string[];
  defaultText: string;
  help: string;
}

const top = (flag: string, key: string, kind: Kind, defaultText: string, help: string, values?: readonly string[]): Setting => ({
  flag,
  env: `NERVE_${flag.replace(/-/g, '_').toUpperCase()}`,
  key,
  kind,
  defaultText,
  help,
  ...(values ? { values } : {}),
});
/** The `--help` and README text of a default read from `NODE_DEFAULTS`. */
const fixed = (key: keyof typeof NODE_DEFAULTS): string => String(NODE_DEFAULTS[key]);
const limit = (flag: string, key: keyof LimitOptions, help: string): Setting => ({
  ...top(flag, key, 'int', String(DEFAULT_LIMITS[key]), help),
  limit: true,
});

/** Settings of `nerve serve` itself, as opposed to options of one node. */
interface ServeCliSettings {
  /** Node processes on this machine, sharing the port (src/cli/multi.ts). Default 1. */
  nodes: number;
  /** OTLP/HTTP base URL for spans (src/tracing/sdk.ts; the `OTEL_*` variables are read there too). Default none. */
  otelEndpoint: string | undefined;
}

/** Most node processes `--nodes` may start. */
const MAX_NODES = 256;
const DEFAULT_NODES = 1;

// One row per setting, as the README shows them: kept one line each.
// prettier-ignore
export const SETTINGS: readonly Setting[] = [
  top('port', 'port', 'int', fixed('port'), 'TCP port for HTTP and WebSocket (0 = any free port)'),
  top('host', 'host', 'string', fixed('host'), 'interface to listen on'),
  top('node-id', 'nodeId', 'string', '{hostname}-{random}', 'this node\'s id, unique in the cluster'),
  top('env', 'env', 'string', fixed('env'), 'environment name, first component of channel and key names'),
  top('service', 'service', 'string', fixed('service'), 'service name, second component of channel and key names'),
  top('default-tenant', 'defaultTenant', 'string', fixed('defaultTenant'), 'tenant for credentials that name none'),
  top('log-level', 'logLevel', 'enum', fixed('logLevel'), 'log level', LOG_LEVELS),
  top('log-format', 'logFormat', 'enum', 'pretty on a terminal, else json', 'log lines: pretty (coloured, for people) or json (one object a line, for log pipelines)', LOG_FORMATS),
  top('auth-secret', 'authSecret', 'string', 'none (dev auth)', 'HMAC JWT secret (>= 32 bytes), also signs minted join tokens; disables dev auth'),
  top('auth-public-key', 'authPublicKey', 'string', 'none', 'PEM public key (RSA/EC/Ed25519) for JWTs, as PEM text or a file path; disables dev auth'),
  top('auth-jwks-url', 'authJwksUrl', 'string', 'none', 'JWKS URL for JWTs (cached, refetched for unknown kid); disables dev auth'),
  top('auth-algorithms', 'authAlgorithms', 'list', 'by key (HS256 | key\'s alg | RS256,ES256,EdDSA)', 'accepted JWT alg values, comma-separated'),
  top('auth-audience', 'authAudience', 'string', 'none (not checked)', 'required JWT aud'),
  top('auth-issuer', 'authIssuer', 'string', 'none (not checked)', 'required JWT iss'),
  top('auth-grants-required', 'authGrantsRequired', 'bool', fixed('authGrantsRequired'), 'tokens without a rooms claim get no room rights (join tokens grant them)'),
  top('join-token-ttl-s', 'joinTokenTtlSeconds', 'int', fixed('joinTokenTtlSeconds'), 'lifetime of join tokens minted by the server API, seconds'),
  top('allowed-origins', 'allowedOrigins', 'list', 'none (any origin)', 'browser origins allowed to upgrade, comma-separated; others get 403'),
  top('trusted-proxies', 'trustedProxies', 'list', 'none', 'load balancer addresses / CIDRs whose X-Forwarded-For names the client (per-IP caps, logs), comma-separated'),
  top('allow-missing-origin', 'allowMissingOrigin', 'bool', fixed('allowMissingOrigin'), 'with --allowed-origins, also accept upgrades without an Origin header'),
  top('per-message-deflate', 'perMessageDeflate', 'bool', fixed('perMessageDeflate'), 'offer permessage-deflate (bounded; max-frame-bytes applies inflated)'),
  top('turn-secret', 'turnSecret', 'string', 'none', 'coturn static-auth-secret: welcome carries TURN REST credentials'),
  top('turn-urls', 'turnUrls', 'list', 'none', 'turn:/turns: URLs for the TURN credentials, comma-separated'),
  top('turn-ttl-s', 'turnTtlSeconds', 'int', fixed('turnTtlSeconds'), 'lifetime of TURN credentials, seconds'),
  top('bus', 'bus', 'enum', fixed('bus'), 'hot-lane bus: auto = redis with --redis-url, else memory; rabbitmq needs --amqp-url and --postgres-url', BUS_DRIVERS),
  top('chat-path', 'chatPath', 'enum', fixed('chatPath'), 'with --bus rabbitmq: who stores chat, the node or the chat-store worker (nerve worker chat-store --chat-intake)', CHAT_PATHS),
  top('chat-intake-timeout-ms', 'chatIntakeTimeoutMs', 'int', fixed('chatIntakeTimeoutMs'), 'with --chat-path worker: how long a chat publish waits for the worker'),
  top('redis-url', 'redisUrl', 'string', 'none (memory)', 'Redis URL for the hot lane, replay and presence'),
  top('redis-mode', 'redisMode', 'enum', fixed('redisMode'), 'Redis Pub/Sub, or sharded Pub/Sub on Redis Cluster', REDIS_MODES),
  top('redis-sentinels', 'redisSentinels', 'list', 'none', 'Redis Sentinel host:port list, comma-separated: every Redis connection follows the master (not with --redis-mode sharded)'),
  top('redis-sentinel-name', 'redisSentinelName', 'string', 'none', 'master name the sentinels monitor (required with --redis-sentinels)'),
  top('redis-sentinel-password', 'redisSentinelPassword', 'string', 'none', 'password of the sentinels (the data nodes\' is in --redis-url)'),
  top('redis-sentinel-username', 'redisSentinelUsername', 'string', 'none', 'ACL user of the sentinels'),
  top('redis-sentinel-tls', 'redisSentinelTls', 'bool', fixed('redisSentinelTls'), 'TLS to the sentinels (data nodes: a rediss:// --redis-url)'),
  top('redis-wait-replicas', 'redisWaitReplicas', 'int', '1 with --redis-sentinels, else 0', 'replicas that must have a chat message (WAIT) before it is published and acked'),
  top('redis-wait-all-replicas', 'redisWaitAllReplicas', 'bool', 'true with --redis-sentinels, else false', 'with --redis-wait-replicas: wait for every replica online too (a crashed master loses no acked chat)'),
  top('redis-wait-timeout-ms', 'redisWaitTimeoutMs', 'int', fixed('redisWaitTimeoutMs'), 'longest wait for --redis-wait-replicas; past it the sender gets outcome_unknown'),
  top('presence-ttl-ms', 'presenceTtlMs', 'int', fixed('presenceTtlMs'), 'a crashed node\'s members leave after this long'),
  top('mailbox-ttl-ms', 'mailboxTtlMs', 'int', fixed('mailboxTtlMs'), 'signals to a user gone for less than this wait for a reconnect (0 = off)'),
  top('amqp-url', 'amqpUrl', 'string', 'none (memory)', 'AMQP URL for the cold lane (and the hot lane with --bus rabbitmq)'),
  top('postgres-url', 'postgresUrl', 'string', 'none', 'PostgreSQL URL (workers, stored history API)'),
  top('history-ttl-ms', 'historyTtlMs', 'int', fixed('historyTtlMs'), 'idle time before a room\'s Redis history expires'),
  top('history-policies', 'historyPolicies', 'json', '[]', 'Redis history bounds per room prefix: [{prefix, maxMessages?, ttlMs?}]'),
  top('postgres-schema', 'postgresSchema', 'string', fixed('postgresSchema'), 'PostgreSQL schema the chat-store worker writes'),
  top('api-key', 'apiKey', 'string', 'none (API off)', 'bearer key for the server HTTP API with every scope (>= 24 characters)'),
  top('pusher-apps', 'pusherApps', 'string', 'none', 'Pusher-protocol apps (docs/pusher.md): JSON [{id, key, secret, tenant?, enableClientMessages?, ...}] or the path of a JSON file'),
  top('api-keys', 'apiKeys', 'json', '[]', `scoped API keys: [{key, scopes: [${API_SCOPES.join('|')}], name?, tenants?}]`),
  top('ice-servers', 'iceServers', 'json', '[]', 'ICE servers for the welcome frame, JSON array'),
  top('demo', 'demo', 'bool', fixed('demo'), 'serve the demo page at /'),
  { ...top('nodes', 'nodes', 'int', String(DEFAULT_NODES), `node processes on this machine, sharing the port (1-${MAX_NODES}; > 1 needs --redis-url)`), cli: true },
  { ...top('otel-endpoint', 'otelEndpoint', 'string', 'none (or OTEL_EXPORTER_OTLP_ENDPOINT)', 'OTLP/HTTP base URL: record OpenTelemetry spans for each hop of a message (tracing)'), cli: true },
  top('shutdown-timeout-ms', 'shutdownTimeoutMs', 'int', fixed('shutdownTimeoutMs'), 'longest graceful shutdown before sockets are cut'),
  top('drain-window-ms', 'drainWindowMs', 'int', fixed('drainWindowMs'), 'on SIGTERM, close connections in batches spread over this window (capped by shutdown-timeout-ms; 0 = at once)'),
  top('advertise-url', 'advertiseUrl', 'string', 'http://{host}:{port}', 'address of this node shown in the node registry (nerve status, /admin)'),
  top('registry-interval-ms', 'registryIntervalMs', 'int', fixed('registryIntervalMs'), 'node registry heartbeat; an entry expires after 3 missed heartbeats'),
  top('tenant-quotas', 'tenantQuotasFile', 'string', 'none (no quotas)', 'JSON file of cluster-wide quotas per tenant: {"tenant": {connections?, publishesPerSecond?, signalsPerSecond?, rooms?, storedBytes?}, "*": {...}}; PUT /api/tenants/{tenant}/quotas wins over it'),
  top('quota-refresh-ms', 'quotaRefreshMs', 'int', fixed('quotaRefreshMs'), 'each node reads quotas set through the API again this often (the time a change takes to reach every node)'),
  top('usage-interval-ms', 'usageIntervalMs', 'int', fixed('usageIntervalMs'), 'usage metering interval: one usage.reported event per tenant, node and interval'),
  top('probe-interval-ms', 'probeIntervalMs', 'int', fixed('probeIntervalMs'), 'PING every Redis connection this often; one silent for an interval is replaced (0 = off)'),
  limit('max-frame-bytes', 'maxFrameBytes', 'largest WebSocket frame accepted'),
  limit('max-rooms', 'maxRoomsPerConnection', 'rooms one connection may be in'),
  limit('max-room-id-length', 'maxRoomIdLength', 'longest room id'),
  limit('rate-per-second', 'ratePerSecond', 'frames per second per connection (sustained)'),
  limit('rate-burst', 'rateBurst', 'frames per connection in a burst'),
  limit('heartbeat-ms', 'heartbeatMs', 'ping interval; a missed pong ends the connection'),
  limit('handshake-timeout-ms', 'handshakeTimeoutMs', 'time allowed before the connect frame'),
  limit('history-size', 'historySize', 'chat messages kept per room (Redis trims in whole stream nodes: up to ~100 more)'),
  limit('history-on-join', 'historyOnJoin', 'recent chat messages sent on join'),
  limit('recovery-limit', 'recoveryLimit', 'most missed messages a resume returns'),
  limit('idempotency-window-ms', 'idempotencyWindowMs', 'window for repeated client message ids'),
  limit('send-buffer-soft-bytes', 'sendBufferSoftBytes', 'send buffer above which ephemeral frames are dropped'),
  limit('send-buffer-hard-bytes', 'sendBufferHardBytes', 'send buffer above which a socket is closed (4009)'),
  limit('max-errors-per-10s', 'maxErrorsPer10s', 'errors a connection may cause per 10 s before 4008'),
  limit('room-rate-per-second', 'roomRatePerSecond', 'publishes per second into one room on this node (sustained)'),
  limit('room-rate-burst', 'roomRateBurst', 'publishes into one room on this node in a burst'),
  limit('max-connections-per-ip', 'maxConnectionsPerIp', 'open WebSockets per remote IP on this node, over: 429 (0 = no limit)'),
  limit('max-connections-per-user', 'maxConnectionsPerUser', 'connections per user on this node, over: close 4011 (0 = no limit)'),
  limit('headers-timeout-ms', 'headersTimeoutMs', 'time a new TCP connection has to send its request headers (slowloris)'),
  limit('presence-state-max-bytes', 'presenceStateMaxBytes', 'largest presence state (JSON, with the token\'s presence claim); over: presence_too_large'),
  limit('presence-list-max', 'presenceListMax', 'rooms above this many members send counts (member_count) instead of member lists and frames (0 = never)'),
  limit('presence-count-interval-ms', 'presenceCountIntervalMs', 'in a room above --presence-list-max, members get at most one member_count this often'),
];

function parseValue(setting: Setting, raw: string, source: string): unknown {
  const name = `${setting.key} (${source})`;
  switch (setting.kind) {
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, 'an integer', raw);
      return Number(raw);
    }
    case 'bool': {
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new ConfigError(name, 'true | false', raw);
    }
    case 'json': {
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        throw new ConfigError(name, 'JSON', raw);
      }
    }
    case 'enum': {
      if (!setting.values?.includes(raw)) throw new ConfigError(name, setting.values?.join(' | ') ?? '', raw);
      return raw;
    }
    case 'string':
      return raw;
    case 'list':
      return raw
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
  }
}

/**
 * Flags win over environment variables. `--flag value`, `--flag=value`, and
 * for booleans `--flag` / `--no-flag`. Unknown flags are errors.
 */
export function parseServeArgs(argv: readonly string[], env: NodeJS.ProcessEnv): NodeOptionsInput {
  return parseServeCommand(argv, env).options;
}

/**
 * Like `parseServeArgs`, and also the command-line settings (`--nodes`),
 * kept apart so they never reach `NodeOptions`.
 */
export function parseServeCommand(argv: readonly string[], env: NodeJS.ProcessEnv): { options: NodeOptionsInput; cli: ServeCliSettings } {
  const input: Record<string, unknown> = {};
  const limits: Record<string, unknown> = {};
  const cliInput: Record<string, unknown> = {};
  const assign = (setting: Setting, value: unknown) => {
    if (setting.cli) cliInput[setting.key] = value;
    else if (setting.limit) limits[setting.key] = value;
    else input[setting.key] = value;
  };
  for (const setting of SETTINGS) {
    const raw = env[setting.env];
    if (raw !== undefined && raw !== '') assign(setting, parseValue(setting, raw, setting.env));
  }
  const byFlag = new Map(SETTINGS.map((setting) => [setting.flag, setting]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--')) throw new ConfigError(arg, 'a --flag (see nerve serve --help)', arg);
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    let setting = byFlag.get(name);
    if (!setting && name.startsWith('no-') && byFlag.get(name.slice(3))?.kind === 'bool') {
      setting = byFlag.get(name.slice(3));
      name = name.slice(3);
      value = 'false';
    }
    if (!setting) throw new ConfigError(`--${name}`, 'a known flag (see nerve serve --help)', arg);
    if (value === undefined) {
      if (setting.kind === 'bool' && (argv[i + 1] === undefined || argv[i + 1]?.startsWith('--'))) value = 'true';
      else {
        value = argv[i + 1];
        i += 1;
        if (value === undefined) throw new ConfigError(`--${name}`, 'a value', '(nothing)');
      }
    }
    assign(setting, parseValue(setting, value, `--${name}`));
  }
  const nodes = integer('nodes', (cliInput.nodes ?? DEFAULT_NODES) as number, 1, MAX_NODES);
  const otelEndpoint = typeof cliInput.otelEndpoint === 'string' && cliInput.otelEndpoint !== '' ? cliInput.otelEndpoint : undefined;
  const cli: ServeCliSettings = { nodes, otelEndpoint };
  return { options: { ...(input as NodeOptionsInput), limits }, cli };
}

export function serveHelp(): string {
  const lines = ['Usage: nerve serve [flags]', '', 'Every flag can also be set by its environment variable; flags win.', ''];
  const width = Math.max(...SETTINGS.map((setting) => setting.flag.length)) + 4;
  for (const setting of SETTINGS) {
    const values = setting.values ? ` (${setting.values.join('|')})` : '';
    lines.push(`  --${setting.flag.padEnd(width)}${setting.help}${values}`);
    lines.push(`    ${''.padEnd(width)}env ${setting.env}, default ${setting.defaultText}`);
  }
  return lines.join('\n');
}

/** The README's configuration table, row for row (test/unit/settings.test.ts holds the README to it). */
export function settingsMarkdown(): string {
  const rows = SETTINGS.map((setting) => {
    const values = setting.values ? ` (${setting.values.join(', ')})` : '';
    return `| \`--${setting.flag}\` | \`${setting.env}\` | ${setting.defaultText} | ${setting.help}${values} |`;
  });
  return ['| flag | environment | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
