/**
 * Mailbox on Redis, shared by every node. Per user, under one hash tag:
 *   {prefix}:{tenant}:user:{{tenant}:{user}}:mailbox:seen   string `<seen until ms>`, PX ttl
 *   {prefix}:{tenant}:user:{{tenant}:{user}}:mailbox:box    list of `<expires at ms>|<payload>`, PX ttl
 * (components escaped as in src/bus/channels.ts). `offer` checks the mark
 * and appends in one script; `take` reads and deletes the list in one
 * script, so each entry goes to exactly one node (on standalone Redis the
 * takes of one tick share one script call, which empties each list the same
 * way). Expiry times come from the
 * calling node's clock (as in RedisPresence); the key TTLs only collect
 * garbage, so an entry may also vanish with its list without being counted
 * as expired.
 *
 * Runs on standalone Redis (`url`) or Redis Cluster (`nodes`, or a `Cluster`
 * as `client`), through the same `scriptConnection` as history and presence:
 * a user's two keys share the `{tenant:user}` hash tag, so every script
 * touches one slot.
 */
import { Cluster, type Redis, type RedisOptions } from 'ioredis';
import { escapeComponent } from '../bus/channels.js';
import { LuaScript } from '../redis/lua-script.js';
import { closeScriptConnection, scriptConnection, watchScriptConnection, type ClusterSeed } from '../redis/script-connection.js';
import type { LaneHealth } from '../lanes.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import type { LinkLogger, LinkStats, RedisLink } from '../redis/link.js';
import { TickBatch } from '../tick-batch.js';
import { ConfigError } from '../config/errors.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import {
  DEFAULT_MAILBOX_MAX_ENTRIES,
  DEFAULT_MAILBOX_TTL_MS,
  type Mailbox,
  type MailboxOptions,
  type OfferResult,
  type TakeResult,
  type UserRef,
} from './mailbox.js';

export interface RedisMailboxOptions extends MailboxOptions {
  /** Standalone Redis URL; the mailbox opens and closes its own connection. Exactly one of `url`, `nodes` and `client` is required. */
  url?: string;
  /** Redis Cluster seed nodes; the mailbox opens and closes its own `Cluster` connection. */
  nodes?: ClusterSeed[];
  /** A connection owned by the caller (not closed by `close`): a `Redis` or a `Cluster`. */
  client?: Redis | Cluster;
  /** Extra ioredis options for an owned connection (every cluster node with `nodes`): password, TLS... Default none. */
  redisOptions?: RedisOptions;
  /** Key prefix, normally `ChannelNamer.prefix` (`{env}:{service}`). Must not contain `{` or `}`. Default `dev:nerve`. */
  prefix?: string;
  /** Milliseconds between PINGs on the connection; a silent one is replaced (src/redis/link.ts). 0 disables. Default 1000. */
  probeIntervalMs?: number;
  /** Where the connection's probe failures and replacements are logged (a pino logger fits). Default: not logged. */
  logger?: LinkLogger;
}

/** KEYS: 1 seen. ARGV: 1 seen until, 2 ttl ms. */
const markScript = new LuaScript(
  'mailbox.mark',
  `redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`,
);

/**
 * KEYS: 1 seen, 2 box. ARGV: 1 now, 2 expires at, 3 ttl ms, 4 max entries, 5 payload.
 * Returns -1 when the user was not seen recently, else how many old entries were dropped.
 */
const offerScript = new LuaScript(
  'mailbox.offer',
  `local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
if seen <= tonumber(ARGV[1]) then return -1 end
local n = redis.call('RPUSH', KEYS[2], ARGV[2] .. '|' .. ARGV[5])
local max = tonumber(ARGV[4])
local dropped = 0
if n > max then
  dropped = n - max
  redis.call('LTRIM', KEYS[2], dropped, -1)
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return dropped`,
);

/**
 * KEYS: boxes (standalone Redis only: the keys hash to different slots).
 * Returns, per key, its entries oldest first, and deletes the lists: the
 * takes of one tick (a burst of connects) in one atomic call.
 *
 * A key that cannot be read (not a list) gets its error text instead of a
 * list, and the loop goes on: a script that raised would stop halfway, with
 * the boxes before it already deleted and every take of the batch failed,
 * so one bad key would lose other users' signals.
 */
const takeManyScript = new LuaScript(
  'mailbox.take-many',
  `local out = {}
for i, key in ipairs(KEYS) do
  local entries = redis.pcall('LRANGE', key, 0, -1)
  if entries.err then
    out[i] = entries.err
  else
    if #entries > 0 then redis.call('DEL', key) end
    out[i] = entries
  end
end
return out`,
);

/** Most mailboxes one take-many call empties. */
const TAKE_BATCH = 256;

/** KEYS: 1 box. Returns every entry, oldest first, and deletes the list. */
const takeScript = new LuaScript(
  'mailbox.take',
  `local entries = redis.call('LRANGE', KEYS[1], 0, -1)
if #entries > 0 then redis.call('DEL', KEYS[1]) end
return entries`,
);

export class RedisMailbox implements Mailbox {
  readonly driver = 'redis';
  private readonly client: Redis | Cluster;
  private readonly ownsClient: boolean;
  private readonly link: RedisLink;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private state: 'idle' | 'running' | 'closed' = 'idle';
  private lastError: string | undefined;
  private closing: Promise<void> | undefined;
  private readonly onError = (error: Error): void => {
    this.lastError = error.message;
  };

  constructor(options: RedisMailboxOptions) {
    this.prefix = options.prefix ?? 'dev:nerve';
    if (/[{}]/.test(this.prefix) || this.prefix.length === 0) throw new ConfigError('prefix', 'a non-empty key prefix without { or }', this.prefix);
    this.ttlMs = options.ttlMs ?? DEFAULT_MAILBOX_TTL_MS;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs < 1) throw new ConfigError('ttlMs', 'an integer ≥ 1', this.ttlMs);
    this.maxEntries = options.maxEntries ?? DEFAULT_MAILBOX_MAX_ENTRIES;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) throw new ConfigError('maxEntries', 'an integer ≥ 1', this.maxEntries);
    this.now = options.now ?? Date.now;
    // Last: nothing above may throw after a connection object exists. Throws unless exactly one of url, nodes, client.
    const { client, owned } = scriptConnection(options);
    this.client = client;
    this.ownsClient = owned;
    this.client.on('error', this.onError);
    this.link = watchScriptConnection({ client, owned, lane: 'mailbox', probeIntervalMs: options.probeIntervalMs, log: options.logger });
  }

  async start(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'mailbox is closed');
    if (this.ownsClient && this.client.status === 'wait') {
      try {
        await this.client.connect();
      } catch (error) {
        throw new NerveError(ErrorCode.Unavailable, 'cannot connect to Redis for the mailbox', { cause: error });
      }
    }
    this.state = 'running';
  }

  async markSeen(user: UserRef): Promise<void> {
    await this.run(markScript, [this.key(user, 'seen')], [this.now() + this.ttlMs, this.ttlMs]);
  }

  async offer(user: UserRef, payload: string): Promise<OfferResult> {
    const now = this.now();
    const reply = Number(
      await this.run(offerScript, [this.key(user, 'seen'), this.key(user, 'box')], [now, now + this.ttlMs, this.ttlMs, this.maxEntries, payload]),
    );
    return reply < 0 ? { queued: false, dropped: 0 } : { queued: true, dropped: reply };
  }

  async take(user: UserRef): Promise<TakeResult> {
    const key = this.key(user, 'box');
    const reply = this.client instanceof Cluster ? await this.run(takeScript, [key], []) : await this.takes.add(key);
    if (!Array.isArray(reply)) throw new NerveError(ErrorCode.Internal, 'unexpected reply from the mailbox take script');
    const now = this.now();
    const payloads: string[] = [];
    let expired = 0;
    for (const raw of reply) {
      const text = String(raw);
      const sep = text.indexOf('|');
      if (sep > 0 && Number(text.slice(0, sep)) > now) payloads.push(text.slice(sep + 1));
      else expired += 1;
    }
    return { payloads, expired };
  }

  /**
   * Standalone Redis: the takes of one tick (every connect of a burst takes
   * its mailbox once its user channel is subscribed, and those subscribe in
   * one command) go out as one script call; a lone take runs the one-key
   * script. Each mailbox is still read and emptied atomically.
   */
  private readonly takes = new TickBatch<string, unknown>({
    max: TAKE_BATCH,
    schedule: process.nextTick,
    flush: async (keys) => {
      if (keys.length === 1) return [await this.run(takeScript, keys, [])];
      const replies = await this.run(takeManyScript, keys, []);
      if (!Array.isArray(replies)) throw new NerveError(ErrorCode.Internal, 'unexpected reply from the mailbox take-many script');
      // A box that could not be read comes back as its error text, for its own take only.
      return replies.map((reply: unknown) => (Array.isArray(reply) ? reply : new NerveError(ErrorCode.Internal, 'mailbox unreadable', { cause: new Error(String(reply)) })));
    },
  });

  /** Probe failures and replacements of the connection (src/redis/link.ts), for metrics. */
  linkStats(): LinkStats[] {
    return [{ ...this.link.stats }];
  }

  health(): LaneHealth {
    const base = { lane: 'mailbox', driver: this.driver };
    if (this.state !== 'running') return { ...base, ok: false, detail: `mailbox is ${this.state}` };
    const problem = this.link.problem();
    if (problem !== undefined) return { ...base, ok: false, detail: `redis ${problem}${this.client.status !== 'ready' && this.lastError ? `: ${this.lastError}` : ''}` };
    return { ...base, ok: true };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closed';
      this.link.stop();
      if (this.ownsClient) await closeScriptConnection(this.client);
      this.client.off('error', this.onError);
    })();
    return this.closing;
  }

  /** The user's key for `suffix`; tests use it to delete what they created. */
  key(user: UserRef, suffix: 'seen' | 'box'): string {
    const tenant = escapeComponent(user.tenant);
    return `${this.prefix}:${tenant}:user:{${tenant}:${escapeComponent(user.user)}}:mailbox:${suffix}`;
  }

  private async run(script: LuaScript, keys: string[], args: Array<string | number>): Promise<unknown> {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `mailbox is ${this.state}`);
    try {
      return await script.run(this.client, keys, args);
    } catch (error) {
      // Sent, not answered: it may have run (a mailbox emptied, a signal queued). Not `unavailable`, which means nothing happened.
      if (error instanceof OutcomeUnknownError) throw error;
      throw new NerveError(ErrorCode.Unavailable, 'mailbox store unavailable', { cause: error });
    }
  }
}
