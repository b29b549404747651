/**
 * Lua for the Redis room sessions: one hash per room session (KEYS[1], under
 * the room's hash tag), so each call is one script on one key and slot.
 */
import { LuaScript } from '../redis/lua-script.js';

/** Shared by the scripts: create the session record when missing. ARGV[1] now, ARGV[2] new id. */
const ENSURE = `local id = redis.call('HGET', KEYS[1], 'id')
if not id then
  id = ARGV[2]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'id', id, 'startedAt', ARGV[1], 'createdAt', ARGV[1], 'peak', 0, 'present', 0)
end
`;

/** KEYS: 1 session. ARGV: 1 now, 2 new id, 3 ttl ms, 4 skew ms. Returns the session id. */
export const startScript = new LuaScript(
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
export const currentScript = new LuaScript(
  'sessions.current',
  `${ENSURE}redis.call('PEXPIRE', KEYS[1], ARGV[3])
return id`,
);

/** KEYS: 1 session. ARGV: 1 now, 2 new id, 3 ttl ms, 4 user. Returns the session id. */
export const joinedScript = new LuaScript(
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
export const leftScript = new LuaScript(
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
export const endScript = new LuaScript(
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
