/**
 * Mailbox on Redis, shared by every node. Per user, under one hash tag (one
 * cluster slot; components escaped as in src/bus/channels.ts):
 *   {prefix}:{tenant}:user:{{tenant}:{user}}:mailbox:seen   string `<seen until ms>`, PX ttl
 *   {prefix}:{tenant}:user:{{tenant}:{user}}:mailbox:box    list of `<expires at ms>|<payload>`, PX ttl
 * `offer` checks the mark and appends in one script; `take` reads and
 * deletes the list in one script, so each entry goes to exactly one node.
 * Expiry times come from the calling node's clock; key TTLs only collect garbage.
 */
import { Cluster } from 'ioredis';
import { escapeComponent } from '../bus/channels.js';
import { integerAtLeast } from '../config/validate.js';
import { LuaScript } from '../redis/lua-script.js';
import type { ScriptConnectionOptions } from '../redis/script-connection.js';
import { keyPrefix, RedisScriptLane } from '../redis/script-lane.js';
import { TickBatch } from '../tick-batch.js';
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

export interface RedisMailboxOptions extends MailboxOptions, ScriptConnectionOptions {
  /** Key prefix, normally `ChannelNamer.prefix` (`{env}:{service}`). Must not contain `{` or `}`. Default `dev:nerve`. */
  prefix?: string;
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

export class RedisMailbox extends RedisScriptLane implements Mailbox {
  readonly driver = 'redis';
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: RedisMailboxOptions) {
    const prefix = keyPrefix(options.prefix);
    const ttlMs = integerAtLeast('ttlMs', options.ttlMs ?? DEFAULT_MAILBOX_TTL_MS, 1);
    const maxEntries = integerAtLeast('maxEntries', options.maxEntries ?? DEFAULT_MAILBOX_MAX_ENTRIES, 1);
    super(options, { lane: 'mailbox', subject: 'mailbox is', connectFor: 'the mailbox', store: 'mailbox store' });
    this.prefix = prefix;
    this.ttlMs = ttlMs;
    this.maxEntries = maxEntries;
    this.now = options.now ?? Date.now;
  }

  start(): Promise<void> {
    return this.startLane();
  }

  async markSeen(user: UserRef): Promise<void> {
    await this.runScript(markScript, [this.key(user, 'seen')], [this.now() + this.ttlMs, this.ttlMs]);
  }

  async offer(user: UserRef, payload: string): Promise<OfferResult> {
    const now = this.now();
    const reply = Number(
      await this.runScript(offerScript, [this.key(user, 'seen'), this.key(user, 'box')], [now, now + this.ttlMs, this.ttlMs, this.maxEntries, payload]),
    );
    return reply < 0 ? { queued: false, dropped: 0 } : { queued: true, dropped: reply };
  }

  async take(user: UserRef): Promise<TakeResult> {
    const key = this.key(user, 'box');
    const reply = this.client instanceof Cluster ? await this.runScript(takeScript, [key], []) : await this.takes.add(key);
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
    schedule: (run) => process.nextTick(run),
    flush: async (keys) => {
      if (keys.length === 1) return [await this.runScript(takeScript, keys, [])];
      const replies = await this.runScript(takeManyScript, keys, []);
      if (!Array.isArray(replies)) throw new NerveError(ErrorCode.Internal, 'unexpected reply from the mailbox take-many script');
      // A box that could not be read comes back as its error text, for its own take only.
      return replies.map((reply: unknown) =>
        Array.isArray(reply) ? reply : new NerveError(ErrorCode.Internal, 'mailbox unreadable', { cause: new Error(String(reply)) }),
      );
    },
  });

  /** The user's key for `suffix`; tests use it to delete what they created. */
  key(user: UserRef, suffix: 'seen' | 'box'): string {
    const tenant = escapeComponent(user.tenant);
    return `${this.prefix}:${tenant}:user:{${tenant}:${escapeComponent(user.user)}}:mailbox:${suffix}`;
  }
}
