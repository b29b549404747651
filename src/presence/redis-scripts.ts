/**
 * Lua for the Redis presence. A room's keys share the hash tag `{tenant:room}`:
 *   KEYS[1] conns ZSET member = JSON [user, conn], score = expiry (ms); KEYS[2] users ZSET
 *   user → since; KEYS[3] counts HASH user → live connections; KEYS[4] states HASH
 *   user → presence state (JSON text), deleted with the user.
 * Every room script first removes expired connections and reports the users
 * that thereby left, so exactly one caller fires each leave. Every reply is
 * { r1, r2, roomEmptiedByExpiry (0/1), n, user_1..user_n, rest... }. The node
 * index ({prefix}:presence:nodes ZSET, …:node:{<id>}:rooms SET, …:sweep lock)
 * is outside every room's slot: only the single-key scripts at the end touch it.
 */
import { LuaScript } from '../redis/lua-script.js';

const EXPIRE_DEAD = `
local conns, users, counts, states = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[1])
local left = {}
local dead = redis.call('ZRANGEBYSCORE', conns, '-inf', now)
for _, member in ipairs(dead) do
  redis.call('ZREM', conns, member)
  local user = cjson.decode(member)[1]
  if redis.call('HINCRBY', counts, user, -1) <= 0 then
    redis.call('HDEL', counts, user)
    redis.call('ZREM', users, user)
    redis.call('HDEL', states, user)
    left[#left + 1] = user
  end
end
local emptied = 0
if #left > 0 and redis.call('ZCARD', users) == 0 then emptied = 1 end
local function reply(r1, r2, rest)
  local out = { r1, r2, emptied, #left }
  for _, user in ipairs(left) do out[#out + 1] = user end
  if rest then for _, value in ipairs(rest) do out[#out + 1] = value end end
  return out
end
local function touch(ttl)
  redis.call('PEXPIRE', conns, ttl)
  redis.call('PEXPIRE', users, ttl)
  redis.call('PEXPIRE', counts, ttl)
  redis.call('PEXPIRE', states, ttl)
end
local function set_state(user, state)
  if state and state ~= '' then redis.call('HSET', states, user, state) end
end
local function join(member, user, since, expires, state)
  redis.call('ZADD', conns, expires, member)
  set_state(user, state)
  if redis.call('HINCRBY', counts, user, 1) == 1 then
    redis.call('ZADD', users, since, user)
    return 1
  end
  return 0
end
`;

/**
 * ARGV: 1 now, 2 member, 3 user, 4 since, 5 expires at, 6 key ttl ms, 7
 * state ('' = keep the user's). r1 userJoined, r2 roomStarted; rest: the count.
 */
export const addScript = new LuaScript(
  'presence.add',
  `${EXPIRE_DEAD}
if redis.call('ZSCORE', conns, ARGV[2]) then
  redis.call('ZADD', conns, ARGV[5], ARGV[2])
  set_state(ARGV[3], ARGV[7])
  touch(ARGV[6])
  return reply(0, 0, { redis.call('ZCARD', users) })
end
local started = 0
if redis.call('ZCARD', users) == 0 then started = 1 end
local joined = join(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7])
touch(ARGV[6])
return reply(joined, started, { redis.call('ZCARD', users) })
`,
);

/** ARGV: 1 now, 2 member, 3 user. r1 userLeft, r2 roomEmpty; rest: the count. */
export const removeScript = new LuaScript(
  'presence.remove',
  `${EXPIRE_DEAD}
if redis.call('ZREM', conns, ARGV[2]) == 0 then return reply(0, 0, { redis.call('ZCARD', users) }) end
if redis.call('HINCRBY', counts, ARGV[3], -1) > 0 then return reply(0, 0, { redis.call('ZCARD', users) }) end
redis.call('HDEL', counts, ARGV[3])
redis.call('ZREM', users, ARGV[3])
redis.call('HDEL', states, ARGV[3])
local count = redis.call('ZCARD', users)
if count > 0 then return reply(1, 0, { count }) end
redis.call('DEL', conns, users, counts, states)
return reply(1, 1, { 0 })
`,
);

/**
 * ARGV: 1 now, 2 limit (-1: all). rest: count, then user, since, state
 * ('' = none) for the first `limit` members by since then user: a large
 * room costs its count, not its list.
 */
export const membersScript = new LuaScript(
  'presence.members',
  `${EXPIRE_DEAD}
local limit = tonumber(ARGV[2])
local out = { redis.call('ZCARD', users) }
if limit == 0 then return reply(0, 0, out) end
local stop = -1
if limit > 0 then stop = limit - 1 end
local range = redis.call('ZRANGE', users, 0, stop, 'WITHSCORES')
-- States in batches: unpack() of a whole large room would pass Lua's stack limit.
for first = 1, #range, 1000 do
  local names = {}
  for i = first, math.min(first + 999, #range), 2 do names[#names + 1] = range[i] end
  local found = redis.call('HMGET', states, unpack(names))
  for j = 1, #names do
    out[#out + 1] = names[j]
    out[#out + 1] = range[first + 2 * j - 1]
    out[#out + 1] = found[j] or ''
  end
end
return reply(0, 0, out)
`,
);

/** ARGV: 1 now, 2 user. r1 = 1 when the user has a live connection in the room, else 0. */
export const hasUserScript = new LuaScript(
  'presence.has-user',
  `${EXPIRE_DEAD}
if redis.call('ZSCORE', users, ARGV[2]) then return reply(1, 0) end
return reply(0, 0)
`,
);

/** ARGV: 1 now, 2 member, 3 user, 4 state, 5 key ttl ms. r1 = 1 when set (the connection is in the room), else 0. */
export const setStateScript = new LuaScript(
  'presence.set-state',
  `${EXPIRE_DEAD}
if not redis.call('ZSCORE', conns, ARGV[2]) then return reply(0, 0) end
set_state(ARGV[3], ARGV[4])
touch(ARGV[5])
return reply(1, 0)
`,
);

/** ARGV: 1 now. Only the expiry sweep: run by a survivor on each room of a dead node. */
export const sweepScript = new LuaScript(
  'presence.sweep',
  `${EXPIRE_DEAD}
return reply(0, 0)
`,
);

/**
 * ARGV: 1 now, 2 expires at, 3 key ttl ms, then the members (JSON [user,
 * conn]) of this node's connections in the room. Refreshes the expiry of
 * those that exist and never creates one (ZADD XX): a connection removed
 * meanwhile stays removed, whatever order the scripts run in. rest: the
 * members that were missing (expired and swept while the node was cut off
 * or stalled longer than the TTL, or removed meanwhile); the caller decides
 * which to `restoreScript`. r1 = how many were missing.
 */
export const heartbeatScript = new LuaScript(
  'presence.heartbeat',
  `${EXPIRE_DEAD}
local missing = {}
for i = 4, #ARGV do
  if redis.call('ZSCORE', conns, ARGV[i]) then
    redis.call('ZADD', conns, 'XX', ARGV[2], ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
if redis.call('ZCARD', conns) > 0 then touch(ARGV[3]) end
return reply(#missing, 0, missing)
`,
);

/**
 * ARGV: 1 now, 2 expires at, 3 key ttl ms, then (member, user, since,
 * state) quadruples: connections of this node whose entries expired while it
 * was cut off, added again with their last state (one that exists is only refreshed). r1 = how many were
 * added again, r2 = the room had no member before (it starts again); rest:
 * the users who thereby joined again (their leave was reported).
 */
export const restoreScript = new LuaScript(
  'presence.restore',
  `${EXPIRE_DEAD}
local started = 0
if redis.call('ZCARD', users) == 0 then started = 1 end
local readded, joined = 0, {}
for i = 4, #ARGV, 4 do
  if redis.call('ZSCORE', conns, ARGV[i]) then
    redis.call('ZADD', conns, 'XX', ARGV[2], ARGV[i])
  else
    readded = readded + 1
    -- A user still present keeps the state another connection of theirs may have set since.
    local state = ARGV[i + 3]
    if redis.call('HEXISTS', counts, ARGV[i + 1]) == 1 then state = '' end
    if join(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[2], state) == 1 then joined[#joined + 1] = ARGV[i + 1] end
  end
end
if #joined == 0 then started = 0 end
if redis.call('ZCARD', conns) > 0 then touch(ARGV[3]) end
return reply(readded, started, joined)
`,
);

/**
 * KEYS: 1 node registry. ARGV: 1 instance id, 2 expires at, 3 key ttl ms.
 * Registers or refreshes the instance; its expiry only moves forward (GT),
 * so it is never earlier than that of an entry the instance wrote.
 */
export const registerScript = new LuaScript(
  'presence.register',
  `redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`,
);

/** KEYS: 1 an instance's room set. ARGV: 1 key ttl ms, then rooms (JSON [tenant, room]). */
export const indexRoomsScript = new LuaScript(
  'presence.index-rooms',
  `if #ARGV > 1 then redis.call('SADD', KEYS[1], unpack(ARGV, 2)) end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1`,
);

/**
 * KEYS: 1 node registry. ARGV: 1 instance id, 2 now. Forgets a swept
 * instance unless it registered again meanwhile (it was only late).
 */
export const forgetNodeScript = new LuaScript(
  'presence.forget-node',
  `local expires = redis.call('ZSCORE', KEYS[1], ARGV[1])
if expires and tonumber(expires) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0`,
);

/** KEYS: 1 sweep lock. ARGV: 1 owner. Deletes the lock only if we still hold it. */
export const unlockScript = new LuaScript(
  'presence.unlock',
  `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
);
