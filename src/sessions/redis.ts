/**
 * Room sessions on Redis, shared by every node, so that all of a session's
 * events carry one id and `room.ended` covers every member wherever they
 * were connected. One hash per room session, under the room's hash tag
 * (`hashTag` in src/bus/channels.ts, the same as its history and presence
 * keys):
 *   {prefix}:{tenant}:room:{{tenant}:{room}}:session
 *     id, startedAt, createdAt, peak, present   the session
 *     m:<user>   ms in finished stays
 *     s:<user>   start of the current stay (only while present)
 * Each call is one small Lua script on that one key, so joins, leaves and
 * the end are atomic however many nodes call at once, and it runs on a
 * Redis Cluster as on a standalone Redis (one key, one slot).
 *
 * Every write sets the key's expiry to `ttlMs`: a session whose `end` never
 * ran (a node crashed between presence's `roomEmpty` and its `end`) cannot
 * live forever. The flip side: a session without a single join, leave or
 * read for `ttlMs` loses its record, and its `room.ended` then reports an
 * empty session.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { escapeComponent, hashTag } from '../bus/channels.js';
import type { ParticipantTime } from '../events/events.js';
import type { RoomRef } from '../history/history.js';
import { LuaScript, type LuaArg } from '../redis/lua-script.js';
import { closeScriptConnection, scriptConnection, watchScriptConnection, type ClusterSeed } from '../redis/script-connection.js';
import type { LaneHealth } from '../lanes.js';
import { OutcomeUnknownError } from '../lane-errors.js';
import type { LinkLogger, LinkStats, RedisLink } from '../redis/link.js';
import { ConfigError } from '../config/errors.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { DEFAULT_SESSION_TTL_MS, START_SKEW_MS, type EndedSession, type RoomSessions, type RoomSessionsOptions } from './sessions.js';

export interface RedisRoomSessionsOptions extends RoomSessionsOptions {
  /** Standalone Redis URL; the store opens and closes its own connection. Exactly one of `url`, `nodes` and `client` is required. */
  url?: string;
  /** Redis Cluster seed nodes; the store opens and closes its own `Cluster` connection. */
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
  /** A session record not updated for this long is deleted, ms. Default 86400000 (a day). */
  ttlMs?: number;
}

/** Shared by the scripts: create the session record when missing. ARGV[1] now, ARGV[2] new id. */
const ENSURE = `local id = redis.call('HGET', KEYS[1], 'id')
if not id then
  id = ARGV[2]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'id', id, 'startedAt', ARGV[1], 'createdAt', ARGV[1], 'peak', 0, 'present', 0)
end
`;

/** KEYS: 1 session. ARGV: 1 now, 2 new id, 3 ttl ms, 4 skew ms. Returns the session id. */
const startScript = new LuaScript(
  'sessions.start',
  `local now = tonumber(ARGV[1])
local created = tonumber(redis.call('HGET', KEYS[1], 'createdAt') or '')
local id
if created and created >= now - tonumber(ARGV[4]) then
  id = redis.call('HGET', KEYS[1], 'id')
  if now < tonumber(redis.call('HGET', KEYS[1], 'startedAt')) then redis.call('HSET', KEYS[1], 'startedAt', ARGV[1]) end
else
  id = ARGV[2]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'id', id, 'startedAt', ARGV[1], 'createdAt', ARGV[1], 'peak', 0, 'present', 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return id`,
);

/** KEYS: 1 session. ARGV: 1 now, 2 new id, 3 ttl ms. Returns the session id. */
const currentScript = new LuaScript(
  'sessions.current',
  `${ENSURE}redis.call('PEXPIRE', KEYS[1], ARGV[3])
return id`,
);

/** KEYS: 1 session. ARGV: 1 now, 2 new id, 3 ttl ms, 4 user. Returns the session id. */
const joinedScript = new LuaScript(
  'sessions.joined',
  `${ENSURE}if redis.call('HSETNX', KEYS[1], 's:' .. ARGV[4], ARGV[1]) == 1 then
  redis.call('HSETNX', KEYS[1], 'm:' .. ARGV[4], 0)
  local present = redis.call('HINCRBY', KEYS[1], 'present', 1)
  if present > tonumber(redis.call('HGET', KEYS[1], 'peak')) then redis.call('HSET', KEYS[1], 'peak', present) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return id`,
);

/** KEYS: 1 session. ARGV: 1 now, 2 ttl ms, 3 user. Returns the user's ms, or nil when the session or the user is unknown. */
const leftScript = new LuaScript(
  'sessions.left',
  `local ms = tonumber(redis.call('HGET', KEYS[1], 'm:' .. ARGV[3]) or '')
if not ms then return false end
local since = tonumber(redis.call('HGET', KEYS[1], 's:' .. ARGV[3]) or '')
if since then
  ms = ms + math.max(0, tonumber(ARGV[1]) - since)
  redis.call('HSET', KEYS[1], 'm:' .. ARGV[3], ms)
  redis.call('HDEL', KEYS[1], 's:' .. ARGV[3])
  if tonumber(redis.call('HGET', KEYS[1], 'present')) > 0 then redis.call('HINCRBY', KEYS[1], 'present', -1) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return ms`,
);

/**
 * KEYS: 1 session. ARGV: 1 now, 2 new id. Deletes the session and returns
 * [id, startedAt, peak, user1, ms1, user2, ms2, ...] (open stays counted to now);
 * with no session, [new id, now, 0].
 */
const endScript = new LuaScript(
  'sessions.end',
  `local flat = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
if not fields['id'] then
  redis.call('DEL', KEYS[1])
  return {ARGV[2], ARGV[1], 0}
end
local now = tonumber(ARGV[1])
local out = {fields['id'], fields['startedAt'], tonumber(fields['peak'])}
for name, value in pairs(fields) do
  if string.sub(name, 1, 2) == 'm:' then
    local user = string.sub(name, 3)
    local ms = tonumber(value)
    local since = tonumber(fields['s:' .. user] or '')
    if since then ms = ms + math.max(0, now - since) end
    out[#out + 1] = user
    out[#out + 1] = ms
  end
end
redis.call('DEL', KEYS[1])
return out`,
);

export class RedisRoomSessions implements RoomSessions {
  readonly driver = 'redis';
  private readonly client: Redis | Cluster;
  private readonly ownsClient: boolean;
  private readonly link: RedisLink;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private state: 'idle' | 'running' | 'closed' = 'idle';
  private lastError: string | undefined;
  private closing: Promise<void> | undefined;
  private readonly onError = (error: Error): void => {
    this.lastError = error.message;
  };

  constructor(options: RedisRoomSessionsOptions) {
    this.prefix = options.prefix ?? 'dev:nerve';
    if (/[{}]/.test(this.prefix) || this.prefix.length === 0) throw new ConfigError('prefix', 'a non-empty key prefix without { or }', this.prefix);
    this.ttlMs = options.ttlMs ?? DEFAULT_SESSION_TTL_MS;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs < 1000) throw new ConfigError('ttlMs', 'an integer ≥ 1000', this.ttlMs);
    this.now = options.now ?? Date.now;
    // Last: nothing above may throw after a connection object exists. Throws unless exactly one of url, nodes, client.
    const { client, owned } = scriptConnection(options);
    this.client = client;
    this.ownsClient = owned;
    this.client.on('error', this.onError);
    this.link = watchScriptConnection({ client, owned, lane: 'sessions', probeIntervalMs: options.probeIntervalMs, log: options.logger });
  }

  async open(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'room sessions are closed');
    if (this.ownsClient && this.client.status === 'wait') {
      try {
        await this.client.connect();
      } catch (error) {
        throw new NerveError(ErrorCode.Unavailable, 'cannot connect to Redis for room sessions', { cause: error });
      }
    }
    this.state = 'running';
  }

  async start(room: RoomRef, now: number): Promise<string> {
    return String(await this.run(startScript, room, [now, randomUUID(), this.ttlMs, START_SKEW_MS]));
  }

  async current(room: RoomRef): Promise<string> {
    return String(await this.run(currentScript, room, [this.now(), randomUUID(), this.ttlMs]));
  }

  async joined(room: RoomRef, user: string, now: number): Promise<string> {
    return String(await this.run(joinedScript, room, [now, randomUUID(), this.ttlMs, user]));
  }

  async left(room: RoomRef, user: string, now: number): Promise<number | undefined> {
    const reply = await this.run(leftScript, room, [now, this.ttlMs, user]);
    return reply === null || reply === undefined ? undefined : Number(reply);
  }

  async end(room: RoomRef, now: number): Promise<EndedSession> {
    const reply = await this.run(endScript, room, [now, randomUUID()]);
    if (!Array.isArray(reply) || reply.length < 3) throw new NerveError(ErrorCode.Internal, 'unexpected reply from the session end script');
    const startedAt = Number(reply[1]);
    const participants: ParticipantTime[] = [];
    for (let i = 3; i + 1 < reply.length; i += 2) participants.push({ user: String(reply[i]), ms: Number(reply[i + 1]) });
    return {
      id: String(reply[0]),
      startedAt,
      durationMs: Math.max(0, now - startedAt),
      participants,
      peakParticipants: Number(reply[2]),
    };
  }

  /** Probe failures and replacements of the connection (src/redis/link.ts), for metrics. */
  linkStats(): LinkStats[] {
    return [{ ...this.link.stats }];
  }

  health(): LaneHealth {
    const base = { lane: 'sessions', driver: this.driver };
    if (this.state !== 'running') return { ...base, ok: false, detail: `room sessions are ${this.state}` };
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

  /** The room's session key; tests use it to check and delete what they created. */
  key(room: RoomRef): string {
    return `${this.prefix}:${escapeComponent(room.tenant)}:room:${hashTag(room.tenant, room.room)}:session`;
  }

  private async run(script: LuaScript, room: RoomRef, args: LuaArg[]): Promise<unknown> {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `room sessions are ${this.state}`);
    try {
      return await script.run(this.client, [this.key(room)], args);
    } catch (error) {
      // Sent, not answered: it may have run (a mailbox emptied, a signal queued). Not `unavailable`, which means nothing happened.
      if (error instanceof OutcomeUnknownError) throw error;
      throw new NerveError(ErrorCode.Unavailable, 'room session store unavailable', { cause: error });
    }
  }
}
