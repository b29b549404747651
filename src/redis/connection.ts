/**
 * Where every Redis connection of a node goes (bus, script lanes, registry),
 * decided once: standalone (the URL); Sentinel (the URL gives the data nodes'
 * credentials, database and TLS, ioredis asks the sentinels for the master
 * and drops its connection at `+switch-master`: docs/operations.md, "Redis
 * Sentinel"); Cluster (`sharded`: the URL's host and port as the seed, its
 * credentials and TLS on every cluster node).
 */
import type { RedisOptions } from 'ioredis';

/** A sentinel's address. */
export interface SentinelAddress {
  host: string;
  port: number;
}

/** How to reach the master through Redis Sentinel (normalized from the node options). */
export interface RedisSentinelSettings {
  /** The sentinels; ioredis tries them in turn and learns the others from them. At least one. */
  sentinels: SentinelAddress[];
  /** Master group name (`sentinel monitor <name> ...`). */
  name: string;
  /** Password of the sentinels (`requirepass` in sentinel.conf). Default none. */
  password?: string | undefined;
  /** ACL user of the sentinels. Default none. */
  username?: string | undefined;
  /** Talk TLS to the sentinels. Default false. */
  tls?: boolean | undefined;
}

/** Where a script connection (history, presence, mailbox, sessions, registry) connects. */
export type RedisStoreConnection = { url: string; redisOptions: RedisOptions } | { nodes: Array<{ host: string; port: number }>; redisOptions: RedisOptions };

/** `host:port` (IPv6 as `[::1]:26379`) to an address; undefined when it is not one. */
export function parseSentinelAddress(text: string): SentinelAddress | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (!match) return undefined;
  const port = Number(match[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { host: match[1] ?? match[2] ?? '', port };
}

/**
 * The ioredis options that make a connection go through Sentinel; none
 * without it. Every lane spreads them over its own options (the URL's
 * credentials still apply: ioredis gives the URL precedence).
 */
export function sentinelRedisOptions(sentinel: RedisSentinelSettings | undefined, redisUrl: string): RedisOptions {
  if (!sentinel) return {};
  return {
    sentinels: sentinel.sentinels.map((address) => ({ ...address })),
    name: sentinel.name,
    role: 'master',
    ...(sentinel.password === undefined ? {} : { sentinelPassword: sentinel.password }),
    ...(sentinel.username === undefined ? {} : { sentinelUsername: sentinel.username }),
    ...(sentinel.tls ? { sentinelTLS: {} } : {}),
    // ioredis ignores `tls` for the data nodes in Sentinel mode unless told.
    ...(redisUrl.startsWith('rediss:') ? { enableTLSForSentinelMode: true } : {}),
    // Subscribe to +switch-master on the sentinels and reconnect at once:
    // without it a connection keeps writing to the old master until Sentinel
    // reconfigures it as a replica (about 10 s), and those writes are lost.
    failoverDetector: true,
    // A write that reaches a server which is (now) a replica: reconnect, which
    // asks the sentinels again. Never resend (2): a script may have run.
    // READONLY is Redis' error code, the first word of the reply.
    reconnectOnError: (error: Error) => error.message.startsWith('READONLY'),
  };
}

/**
 * Where history, presence, the mailbox, sessions and the registry connect:
 * the URL (plus the Sentinel options) in Pub/Sub mode; in sharded mode the
 * URL's host and port as the cluster seed, with its credentials and TLS
 * applied to every cluster node. Sentinel with sharded mode is refused by
 * `normalizeOptions`; here it is a programming error.
 */
export function redisStoreConnection(redisUrl: string, sharded: boolean, sentinel?: RedisSentinelSettings): RedisStoreConnection {
  if (!sharded) return { url: redisUrl, redisOptions: sentinelRedisOptions(sentinel, redisUrl) };
  if (sentinel) throw new TypeError('Redis Sentinel and sharded mode (Redis Cluster) do not go together');
  const parsed = new URL(redisUrl);
  const redisOptions: RedisOptions = {};
  if (parsed.username) redisOptions.username = decodeURIComponent(parsed.username);
  if (parsed.password) redisOptions.password = decodeURIComponent(parsed.password);
  if (parsed.protocol === 'rediss:') redisOptions.tls = {};
  // A cluster has one keyspace (database 0): a /db path in the URL does not apply.
  return { nodes: [{ host: parsed.hostname, port: Number(parsed.port || 6379) }], redisOptions };
}
