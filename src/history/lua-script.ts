/**
 * A Lua script run by SHA, loaded on demand: EVALSHA first, EVAL once when
 * the server answers NOSCRIPT (a restart or SCRIPT FLUSH forgets scripts).
 * Shared by the Redis history and presence drivers, with the connection
 * they run scripts on (`scriptConnection`).
 *
 * Works on a standalone `Redis` and on a `Cluster` alike: ioredis routes
 * EVALSHA / EVAL by the slot of the first key, and each master loads the
 * script on its own first NOSCRIPT. On a cluster every key a script touches
 * (and every shard channel it SPUBLISHes on) must hash to one slot; the
 * drivers make sure of that with one hash tag per room.
 */
import { createHash } from 'node:crypto';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { WriteBatch } from '../write-batch.js';
import { ConfigError } from '../options.js';
import { DEFAULT_PROBE_INTERVAL_MS, RedisLink, type LinkLogger } from '../redis/link.js';

export type LuaArg = string | Buffer | number;

export class LuaScript {
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /**
   * Run the script on `client`. On a connection watched by a RedisLink, a
   * call sent but not answered rejects with OutcomeUnknownError (and a
   * timeout replaces the connection); see src/redis/link.ts.
   */
  run(client: Redis | Cluster, keys: string[], args: LuaArg[]): Promise<unknown> {
    const link = RedisLink.of(client);
    return track(client, link ? link.run(this.name, () => this.call(client, keys, args)) : this.call(client, keys, args));
  }

  private async call(client: Redis | Cluster, keys: string[], args: LuaArg[]): Promise<unknown> {
    holdWrites(client);
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      // NOSCRIPT is the one server reply we must branch on; Redis gives no code other than this prefix.
      return await client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/**
 * Script calls not settled yet, per connection, so that closing waits for
 * them. A call is not one command: after NOSCRIPT it sends EVAL, and a QUIT
 * sent in between would close the connection under that retry.
 */
const inFlight = new WeakMap<Redis | Cluster, Set<Promise<unknown>>>();

function track(client: Redis | Cluster, call: Promise<unknown>): Promise<unknown> {
  let calls = inFlight.get(client);
  if (!calls) inFlight.set(client, (calls = new Set()));
  const settled = (): void => void calls.delete(call);
  call.then(settled, settled);
  calls.add(call);
  return call;
}

/**
 * Script calls issued in one tick (a burst of pipelined chat appends) leave
 * in one write: the connection's socket is corked until the end of the tick,
 * as the gateway does for WebSockets. ioredis' own auto-pipelining is not
 * used (see SCRIPT_CONNECTION_DEFAULTS); corking changes nothing in its
 * command queue, only how many syscalls carry the bytes. Standalone
 * connections only: a Cluster spreads calls over several sockets.
 */
const scriptWrites = new WriteBatch();

function holdWrites(client: Redis | Cluster): void {
  if (client instanceof Redis && client.status === 'ready' && client.stream) scriptWrites.hold(client.stream);
}

/** A Redis Cluster seed node. */
export interface ClusterSeed {
  host: string;
  port: number;
}

/**
 * Where a script-running driver (history, presence) gets its connection.
 * Exactly one of `url`, `nodes` and `client` is required.
 */
export interface ScriptConnectionOptions {
  /** Standalone Redis URL; the driver opens and closes its own connection. */
  url?: string | undefined;
  /** Redis Cluster seed nodes; the driver opens and closes its own `Cluster` connection. */
  nodes?: ClusterSeed[] | undefined;
  /** A connection owned by the caller (not closed by the driver): a `Redis` or a `Cluster`. */
  client?: Redis | Cluster | undefined;
  /** Extra ioredis options for an owned connection (every cluster node): password, username, TLS... Default none. */
  redisOptions?: RedisOptions | undefined;
  /** Milliseconds between PINGs on the connection (src/redis/link.ts); 0 disables. Default 1000. */
  probeIntervalMs?: number | undefined;
  /** Where the connection's probe failures and replacements are logged (a pino logger fits). Default: not logged. */
  logger?: LinkLogger | undefined;
}

/**
 * Bounds one command on a cluster node. ioredis' cluster queue is off (see
 * below) but a command sent to a master that just went silent would
 * otherwise wait for the TCP timeout.
 */
const CLUSTER_COMMAND_TIMEOUT_MS = 5000;

/**
 * The connection of a script-running driver: the caller's `client`, or a new
 * lazily connecting `Redis` (url) or `Cluster` (nodes) that the driver owns.
 * Throws `ConfigError` at construction unless exactly one source is given.
 */
/**
 * Settings of every script connection (history, presence, mailbox, sessions):
 * - never resend a command after a reconnect: a script that ran but whose
 *   reply was lost would run twice (a chat message stored twice, a mailbox
 *   emptied twice); the caller gets an error and retries idempotently;
 *   and fail the commands in flight as soon as their connection closes
 *   (`maxRetriesPerRequest: 0`) rather than at their timeout: they are
 *   never sent again anyway, and a connection replaced by its RedisLink
 *   must not leave its calls hanging;
 * - a command timeout, so a black-holed connection fails the request instead
 *   of stalling the connection's queue for minutes;
 * - TCP keepalive, so a dead peer is noticed.
 *
 * Not auto-pipelining: ioredis sends the next auto-pipeline only once the
 * previous one settled, and with `autoResendUnfulfilledCommands` off a
 * command lost in a reconnect settles only at `commandTimeout`, so every
 * call would wait that long after a Redis restart.
 */
const SCRIPT_CONNECTION_DEFAULTS = {
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  commandTimeout: CLUSTER_COMMAND_TIMEOUT_MS,
  keepAlive: 10_000,
} as const;

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
      clusterRetryStrategy: (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 10), 2000),
      redisOptions: { ...SCRIPT_CONNECTION_DEFAULTS, ...options.redisOptions },
    });
    return { client, owned: true };
  }
  // No offline queue: while Redis is down a call fails at once instead of hanging.
  const client = new Redis(options.url ?? '', { lazyConnect: true, enableOfflineQueue: false, ...SCRIPT_CONNECTION_DEFAULTS, ...options.redisOptions });
  return { client, owned: true };
}

/**
 * The watchdog of a script connection (src/redis/link.ts), started at once:
 * PINGs it every `probeIntervalMs` and replaces it (when `owned`) once it
 * stops answering. `onRestored` runs when it is ready again after a loss.
 */
export function watchScriptConnection(options: {
  client: Redis | Cluster;
  owned: boolean;
  lane: string;
  probeIntervalMs: number | undefined;
  log?: LinkLogger | undefined;
  onRestored?: () => void;
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

/** How long closing waits for script calls in flight before it sends QUIT anyway. */
const CLOSE_WAIT_MS = CLUSTER_COMMAND_TIMEOUT_MS;

/**
 * Close an owned connection: once the script calls in flight on it have
 * settled (at most CLOSE_WAIT_MS, the command timeout that bounds each of
 * them anyway), QUIT, or cut it when QUIT cannot be sent. Callers refuse
 * new calls before closing, so none start meanwhile.
 */
export async function closeScriptConnection(client: Redis | Cluster): Promise<void> {
  const calls = inFlight.get(client);
  if (calls && calls.size > 0) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...calls]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, CLOSE_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}
