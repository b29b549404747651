/**
 * The connection of a script-running lane (history, presence, mailbox,
 * sessions, registry, quotas, the Pusher store): the caller's `client`, or a
 * lazily connecting `Redis` (url) or `Cluster` (nodes) the lane owns, with
 * its watchdog (src/redis/link.ts) and its close.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { fullJitter } from '../backoff.js';
import { ConfigError } from '../config/errors.js';
import { DEFAULT_PROBE_INTERVAL_MS, RedisLink, type LinkLogger } from './link.js';
import { scriptCallsSettled } from './lua-script.js';

/** A Redis Cluster seed node. */
interface ClusterSeed {
  host: string;
  port: number;
}

/** Where a script-running lane gets its connection. Exactly one of `url`, `nodes` and `client` is required. */
export interface ScriptConnectionOptions {
  /** Standalone Redis URL; the lane opens and closes its own connection. */
  url?: string | undefined;
  /** Redis Cluster seed nodes; the lane opens and closes its own `Cluster` connection. */
  nodes?: ClusterSeed[] | undefined;
  /** A connection owned by the caller (not closed by the lane): a `Redis` or a `Cluster`. */
  client?: Redis | Cluster | undefined;
  /** Extra ioredis options for an owned connection (every cluster node): password, username, TLS... Default none. */
  redisOptions?: RedisOptions | undefined;
  /** Milliseconds between PINGs on the connection; a silent one is replaced (src/redis/link.ts). 0 disables. Default 1000. */
  probeIntervalMs?: number | undefined;
  /** Where the connection's probe failures and replacements are logged (a pino logger fits). Default: not logged. */
  logger?: LinkLogger | undefined;
}

/** Reconnect backoff of an owned standalone connection, ms: the bus's defaults (src/bus/redis-options.ts). */
const RECONNECT_BASE_MS = 50;
const RECONNECT_MAX_MS = 2000;

/** Bounds one command; on a cluster node a command sent to a master that just went silent would otherwise wait for the TCP timeout. */
const COMMAND_TIMEOUT_MS = 5000;

/**
 * Settings of every script connection. Never resend a command after a
 * reconnect (a script whose reply was lost would run twice: a chat message
 * stored twice) and fail the calls in flight as soon as their connection
 * closes (`maxRetriesPerRequest: 0`). Not auto-pipelining: ioredis sends the
 * next auto-pipeline only once the previous one settled, so a command lost in
 * a reconnect would hold every later call until `commandTimeout`.
 */
const SCRIPT_CONNECTION_DEFAULTS = {
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  commandTimeout: COMMAND_TIMEOUT_MS,
  keepAlive: 10_000,
} as const;

/** Throws `ConfigError` unless exactly one source is given. */
export function scriptConnection(options: ScriptConnectionOptions): { client: Redis | Cluster; owned: boolean } {
  const given = [options.url, options.nodes, options.client].filter((value) => value !== undefined).length;
  if (given !== 1) throw new ConfigError('url', 'exactly one of url, nodes and client', options.url);
  if (options.client) return { client: options.client, owned: false };
  if (options.nodes) {
    if (options.nodes.length === 0) throw new ConfigError('nodes', 'at least one cluster seed node', '[]');
    for (const node of options.nodes) {
      if (!node.host || !Number.isInteger(node.port) || node.port < 1 || node.port > 65_535) {
        throw new ConfigError('nodes', 'seed nodes as { host, port } with a port from 1 to 65535', `${node.host}:${node.port}`);
      }
    }
    const client = new Cluster(options.nodes, {
      lazyConnect: true,
      // No cluster-level offline queue: while the cluster is down a call fails at once instead of hanging.
      // (Node connections keep theirs: ioredis connects them lazily, on their first command.)
      enableOfflineQueue: false,
      clusterRetryStrategy: (attempt: number) => fullJitter(attempt, 100, 2000),
      redisOptions: { ...SCRIPT_CONNECTION_DEFAULTS, ...options.redisOptions },
    });
    return { client, owned: true };
  }
  // No offline queue: while Redis is down a call fails at once instead of hanging. Reconnects back off as the bus's do.
  const client = new Redis(options.url ?? '', {
    lazyConnect: true,
    enableOfflineQueue: false,
    retryStrategy: (attempt: number) => fullJitter(attempt, RECONNECT_BASE_MS, RECONNECT_MAX_MS),
    ...SCRIPT_CONNECTION_DEFAULTS,
    ...options.redisOptions,
  });
  return { client, owned: true };
}

/**
 * The watchdog of a script connection, started at once: PINGs it every
 * `probeIntervalMs` and replaces it (when `owned`) once it stops answering.
 * `onRestored` runs when it is ready again after a loss.
 */
export function watchScriptConnection(options: {
  client: Redis | Cluster;
  owned: boolean;
  lane: string;
  probeIntervalMs: number | undefined;
  log?: LinkLogger | undefined;
  onRestored?: (() => void) | undefined;
}): RedisLink {
  const link = new RedisLink({
    client: options.client,
    lane: options.lane,
    owned: options.owned,
    intervalMs: options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS,
    ...(options.log ? { log: options.log } : {}),
    ...(options.onRestored ? { onRestored: options.onRestored } : {}),
  });
  link.start();
  return link;
}

/**
 * Close an owned connection once its script calls in flight settled (at most
 * the command timeout that bounds each of them anyway): QUIT, or cut it when
 * QUIT cannot be sent. Callers refuse new calls before closing.
 */
export async function closeScriptConnection(client: Redis | Cluster): Promise<void> {
  await scriptCallsSettled(client, COMMAND_TIMEOUT_MS);
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}
