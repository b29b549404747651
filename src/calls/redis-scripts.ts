/**
 * Lua for the Redis call store: one JSON record per call (KEYS[1], under the
 * room's hash tag), the same rules as state.ts:
 *   { id, startedAt, by, peak, present, last,
 *     users = { <user> = { ms, n, since } }, conns = { <conn> = { u, seen } } }
 * Every script first expires connections not seen for the TTL (each leaves
 * at its last-seen time); the script that empties a record deletes it and
 * returns the ended call, so exactly one caller reports each end.
 * Ended calls are returned as JSON { id, startedAt, endedAt, peak, users = { <user> = ms } }.
 */
import { LuaScript } from '../redis/lua-script.js';

const RULES = `
local function drop(s, conn, at)
  local e = s.conns[conn]
  if not e then return 0 end
  s.conns[conn] = nil
  local p = s.users[e.u]
  if p then
    p.n = p.n - 1
    if p.n <= 0 then
      p.n = 0
      p.ms = p.ms + math.max(0, at - p.since)
      s.present = math.max(0, s.present - 1)
    end
  end
  if at > s.last then s.last = at end
  return 1
end
local function expire(s, now, ttl)
  local dead = {}
  for conn, e in pairs(s.conns) do
    if e.seen + ttl <= now then dead[#dead + 1] = conn end
  end
  for _, conn in ipairs(dead) do drop(s, conn, s.conns[conn].seen) end
end
local function empty(s) return next(s.conns) == nil end
local function ended(s)
  local endedAt = math.max(s.last, s.startedAt)
  local users = {}
  for user, p in pairs(s.users) do
    local ms = p.ms
    if p.n > 0 then ms = ms + math.max(0, endedAt - p.since) end
    users[user] = ms
  end
  return cjson.encode({ id = s.id, startedAt = s.startedAt, endedAt = endedAt, peak = s.peak, users = users })
end
local function load()
  local raw = redis.call('GET', KEYS[1])
  if not raw then return nil end
  return cjson.decode(raw)
end
`;

/**
 * ARGV: 1 now, 2 conn, 3 user, 4 ttl ms, 5 key ttl ms, 6 new id.
 * Returns { joined 0/1, started JSON or '', ended JSON or '' }.
 */
export const joinScript = new LuaScript(
  'calls.join',
  `${RULES}
local now = tonumber(ARGV[1])
local s = load()
local endedOut, started = '', ''
if s then
  expire(s, now, tonumber(ARGV[4]))
  if empty(s) then
    endedOut = ended(s)
    s = nil
  end
end
if not s then
  s = { id = ARGV[6], startedAt = now, by = ARGV[3], peak = 0, present = 0, last = now, users = {}, conns = {} }
  started = cjson.encode({ id = s.id, startedAt = now, by = ARGV[3] })
end
local joined = 0
local e = s.conns[ARGV[2]]
if e then
  if now > e.seen then e.seen = now end
else
  joined = 1
  s.conns[ARGV[2]] = { u = ARGV[3], seen = now }
  local p = s.users[ARGV[3]]
  if not p then
    p = { ms = 0, n = 0, since = now }
    s.users[ARGV[3]] = p
  end
  p.n = p.n + 1
  if p.n == 1 then
    p.since = now
    s.present = s.present + 1
    if s.present > s.peak then s.peak = s.present end
  end
end
redis.call('SET', KEYS[1], cjson.encode(s), 'PX', ARGV[5])
return { joined, started, endedOut }
`,
);

/** ARGV: 1 now, 2 conn, 3 ttl ms, 4 key ttl ms. Returns { left 0/1, ended JSON or '' }. */
export const leaveScript = new LuaScript(
  'calls.leave',
  `${RULES}
local now = tonumber(ARGV[1])
local s = load()
if not s then return { 0, '' } end
expire(s, now, tonumber(ARGV[3]))
local left = drop(s, ARGV[2], now)
if empty(s) then
  redis.call('DEL', KEYS[1])
  return { left, ended(s) }
end
redis.call('SET', KEYS[1], cjson.encode(s), 'PX', ARGV[4])
return { left, '' }
`,
);

/**
 * ARGV: 1 now, 2 ttl ms, 3 key ttl ms, then this node's connections in the
 * call. Refreshes those that exist, never creates one. Returns { ended JSON
 * or '', missing conns... }.
 */
export const refreshScript = new LuaScript(
  'calls.refresh',
  `${RULES}
local now = tonumber(ARGV[1])
local missing = { '' }
local s = load()
if s then
  expire(s, now, tonumber(ARGV[2]))
  if empty(s) then
    redis.call('DEL', KEYS[1])
    missing[1] = ended(s)
    s = nil
  end
end
for i = 4, #ARGV do
  local e = s and s.conns[ARGV[i]]
  if e then
    if now > e.seen then e.seen = now end
  else
    missing[#missing + 1] = ARGV[i]
  end
end
if s then redis.call('SET', KEYS[1], cjson.encode(s), 'PX', ARGV[3]) end
return missing
`,
);

/**
 * ARGV: 1 now, 2 ttl ms, 3 key ttl ms. Returns { ended JSON or '', next }:
 * `next` is when the earliest remaining connection expires, 0 when the
 * record is gone (ended now, or earlier).
 */
export const sweepScript = new LuaScript(
  'calls.sweep',
  `${RULES}
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local s = load()
if not s then return { '', 0 } end
expire(s, now, ttl)
if empty(s) then
  redis.call('DEL', KEYS[1])
  return { ended(s), 0 }
end
local first
for _, e in pairs(s.conns) do
  if not first or e.seen < first then first = e.seen end
end
redis.call('SET', KEYS[1], cjson.encode(s), 'PX', ARGV[3])
return { '', first + ttl }
`,
);

/**
 * KEYS: 1 the index of active calls (ZSET member → when to sweep it). ARGV:
 * 1 member, 2 now. Forgets a call swept as gone unless a join listed it
 * again meanwhile (with a later time).
 */
export const unlistScript = new LuaScript(
  'calls.unlist',
  `local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if at and tonumber(at) <= tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0`,
);
