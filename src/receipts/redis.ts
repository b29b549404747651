/**
 * Read positions on Redis, shared by every node: one hash per room,
 *   {prefix}:{tenant}:room:{{tenant}:{room}}:reads   user → `offset|epoch`
 * under the room's hash tag (one slot with its channel and history). Each
 * call is one script on that key, so `advance` is an atomic compare-and-set
 * across nodes. Every write sets the key's expiry to `ttlMs`: a room nobody
 * reads in for that long loses its positions here (PostgreSQL keeps them).
 */
import { escapeComponent, hashTag } from '../bus/channels.js';
import { integerAtLeast } from '../config/validate.js';
import type { RoomRef } from '../history/history.js';
import { LuaScript } from '../redis/lua-script.js';
import type { ScriptConnectionOptions } from '../redis/script-connection.js';
import { keyPrefix, RedisScriptLane } from '../redis/script-lane.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { StreamPosition } from '../../packages/protocol/src/frames.js';
import { decodePosition, DEFAULT_READ_TTL_MS, type AdvanceResult, type ReadPositions, type ReadSnapshot } from './receipts.js';

/** KEYS: 1 reads hash. ARGV: 1 user, 2 offset, 3 epoch, 4 ttl ms. Returns {advanced 0|1, stored value}; the rule is `advances` (receipts.ts). */
const advanceScript = new LuaScript(
  'receipts.advance',
  `local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local bar = string.find(cur, '|', 1, true)
  if bar and string.sub(cur, bar + 1) == ARGV[3] and tonumber(string.sub(cur, 1, bar - 1)) >= tonumber(ARGV[2]) then
    return {0, cur}
  end
end
local value = ARGV[2] .. '|' .. ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], value)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, value}`,
);

/** KEYS: 1 reads hash. ARGV: 1 user, 2 list max. Returns {1, HGETALL} while the hash has at most that many fields, else {0, the user's value or nil}. */
const readScript = new LuaScript(
  'receipts.read',
  `local max = tonumber(ARGV[2])
if max > 0 and redis.call('HLEN', KEYS[1]) <= max then
  return {1, redis.call('HGETALL', KEYS[1])}
end
return {0, redis.call('HGET', KEYS[1], ARGV[1])}`,
);

export interface RedisReadPositionsOptions extends ScriptConnectionOptions {
  /** Key prefix, normally `ChannelNamer.prefix` (`{env}:{service}`). Must not contain `{` or `}`. Default `dev:nerve`. */
  prefix?: string;
  /** A room's positions not written for this long are deleted, ms. Default 2592000000 (30 days). */
  ttlMs?: number;
}

export class RedisReadPositions extends RedisScriptLane implements ReadPositions {
  readonly driver = 'redis';
  private readonly prefix: string;
  private readonly ttlMs: number;

  constructor(options: RedisReadPositionsOptions) {
    const prefix = keyPrefix(options.prefix);
    const ttlMs = integerAtLeast('ttlMs', options.ttlMs ?? DEFAULT_READ_TTL_MS, 1000);
    super(options, { lane: 'receipts', subject: 'read positions are', connectFor: 'read positions', store: 'read position store' });
    this.prefix = prefix;
    this.ttlMs = ttlMs;
  }

  open(): Promise<void> {
    return this.startLane();
  }

  async advance(room: RoomRef, user: string, position: StreamPosition): Promise<AdvanceResult> {
    const reply = await this.runScript(advanceScript, [this.key(room)], [user, position.offset, position.epoch, this.ttlMs]);
    const stored = Array.isArray(reply) ? decodePosition(String(reply[1])) : undefined;
    if (!stored) throw new NerveError(ErrorCode.Internal, 'unexpected reply from the read position script');
    return { position: stored, advanced: Number((reply as unknown[])[0]) === 1 };
  }

  async read(room: RoomRef, user: string, listMax: number): Promise<ReadSnapshot> {
    const reply = await this.runScript(readScript, [this.key(room)], [user, listMax]);
    if (!Array.isArray(reply)) throw new NerveError(ErrorCode.Internal, 'unexpected reply from the read position script');
    if (Number(reply[0]) !== 1) return { own: typeof reply[1] === 'string' ? decodePosition(reply[1]) : undefined, all: undefined };
    const fields = Array.isArray(reply[1]) ? (reply[1] as unknown[]) : [];
    const all = new Map<string, StreamPosition>();
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const position = decodePosition(String(fields[i + 1]));
      if (position) all.set(String(fields[i]), position);
    }
    return { own: all.get(user), all };
  }

  /** The room's key; tests use it to check and delete what they created. */
  key(room: RoomRef): string {
    return `${this.prefix}:${escapeComponent(room.tenant)}:room:${hashTag(room.tenant, room.room)}:reads`;
  }
}
