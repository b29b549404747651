/**
 * Lua for the Redis Streams history. A room's keys share the hash tag
 * `{tenant:room}` (one cluster slot; the sharded append SPUBLISHes on the
 * room channel, which carries the same tag with `hashTags`): KEYS[1] meta
 * hash { epoch, last }, KEYS[2] the stream (entry `0-<offset>`, field `m` the
 * message JSON), the idempotency key `<expiresAt ms>|<message JSON>`. Offsets
 * are the entry ids' sequence part: "after offset n" is one XRANGE from `0-(n+1)`.
 */
import { LuaScript } from '../redis/lua-script.js';

/** Shared by both scripts: load the epoch, creating a new log when there is none. */
const ENSURE_LOG = `
local meta, stream = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'epoch')
local created = false
if not epoch then
  -- A new epoch is a new log: drop any stream left over from the lost one,
  -- or an XADD of 0-1 would be refused as older than its last id.
  epoch = ARGV[1]
  created = true
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', epoch, 'last', 0)
  redis.call('PEXPIRE', meta, ARGV[2])
end
local function fmt(n) return string.format('%d', n) end
`;

/** How the append script publishes: classic Pub/Sub, or sharded Pub/Sub on Redis Cluster (Redis 7+). */
export type PublishCommand = 'PUBLISH' | 'SPUBLISH';

export const PUBLISH_COMMANDS: readonly PublishCommand[] = ['PUBLISH', 'SPUBLISH'];

/**
 * ARGV: 1 new epoch candidate, 2 ttl ms, 3 offset token, 4 epoch token,
 * 5 message template, 6 channel, 7 envelope template, 8 max messages,
 * 9 trim mode (`~` or `=`), 10 now ms, 11 idempotency window ms. The script
 * swaps the quoted offset token (however many backslashes escape its quotes,
 * so a JSON-nested payload works too) for the bare number, and the epoch
 * token for the epoch; no user data can contain the tokens. Returns
 * { 1, original message JSON } for a duplicate, { 0, message JSON } once stored.
 */
function appendSource(publish: PublishCommand | undefined): string {
  return `
local idem = KEYS[${publish ? 3 : 4}]
local now = tonumber(ARGV[10])
if idem then
  local seen = redis.call('GET', idem)
  if seen then
    local sep = string.find(seen, '|', 1, true)
    local expires = sep and tonumber(string.sub(seen, 1, sep - 1))
    if expires and expires > now then
      ${
        publish
          ? ''
          : `-- A write, so that the caller's WAIT covers the original too: it may
      -- be a message whose own WAIT failed, not on any replica yet.
      redis.call('PEXPIRE', idem, expires - now)`
      }
      return { 1, string.sub(seen, sep + 1) }
    end
  end
end
${ENSURE_LOG}
local offset = redis.call('HINCRBY', meta, 'last', 1)
local function fill(template)
  local out = string.gsub(template, '\\\\*"' .. ARGV[3] .. '\\\\*"', fmt(offset))
  out = string.gsub(out, ARGV[4], epoch)
  return out
end
local message = fill(ARGV[5])
local maxlen = tonumber(ARGV[8])
if maxlen > 0 then
  redis.call('XADD', stream, 'MAXLEN', ARGV[9], maxlen, '0-' .. fmt(offset), 'm', message)
  redis.call('PEXPIRE', stream, ARGV[2])
end
redis.call('PEXPIRE', meta, ARGV[2])
if idem then
  local window = tonumber(ARGV[11])
  redis.call('SET', idem, fmt(now + window) .. '|' .. message, 'PX', window)
end
${
  publish
    ? `-- Stored and published in one script: every node sees one order per room.
-- SPUBLISH (sharded Pub/Sub): the channel must hash to the slot of KEYS,
-- which ChannelNamer's hash tags guarantee.
redis.call('${publish}', ARGV[6], fill(ARGV[7]))
-- A log once written with WAIT (reads end at pub) stays readable after a switch back.
if redis.call('HEXISTS', meta, 'pub') == 1 then redis.call('HSET', meta, 'pub', offset) end`
    : `-- Store only: the envelope waits in the pending hash until a WAIT
-- covers it (publishScript).
local pending = KEYS[3]
if created then
  redis.call('DEL', pending)
  redis.call('HSET', meta, 'pub', 0)
end
redis.call('HSET', pending, fmt(offset), fill(ARGV[7]))
redis.call('PEXPIRE', pending, ARGV[2])`
}
return { 0, message }
`;
}

/**
 * The append script for each publish command (two sources, so the command
 * is part of the script text rather than an argument a caller could bend).
 */
export const appendScripts: Readonly<Record<PublishCommand, LuaScript>> = {
  PUBLISH: new LuaScript('history.append', appendSource('PUBLISH')),
  SPUBLISH: new LuaScript('history.append.sharded', appendSource('SPUBLISH')),
};

/**
 * The append script for `waitReplicas` (same ARGV; ARGV 6 unused): stores
 * the message and puts its filled envelope in the room's pending hash
 * (KEYS[3], offset → envelope; KEYS[4] the idempotency key) for
 * `publishScript` once a WAIT covered it. A duplicate does one harmless
 * write (its key's own expiry), so that a WAIT after it covers the original.
 */
export const storeOnlyAppendScript = new LuaScript('history.append.store', appendSource(undefined));

/**
 * Publishes, in offset order and once, every pending envelope of a room up
 * to offset ARGV[1] on channel ARGV[2]; KEYS[1] meta (`pub`: the last offset
 * published; a log without it starts at ARGV[1]), KEYS[2] the pending hash.
 * Run after a WAIT covered ARGV[1], which covers every earlier offset too
 * (docs/architecture.md). Returns how many envelopes it published.
 */
export const publishScript = new LuaScript(
  'history.publish',
  `
local meta, pending = KEYS[1], KEYS[2]
local upto = tonumber(ARGV[1])
local pub = tonumber(redis.call('HGET', meta, 'pub') or '-1')
if pub < 0 then pub = upto - 1 end
if upto <= pub then return 0 end
local published = 0
for offset = pub + 1, upto do
  local field = string.format('%d', offset)
  local envelope = redis.call('HGET', pending, field)
  if envelope then
    redis.call('PUBLISH', ARGV[2], envelope)
    redis.call('HDEL', pending, field)
    published = published + 1
  end
end
redis.call('HSET', meta, 'pub', upto)
return published
`,
);

/**
 * History paging (src/history/paging.ts). ARGV: 1 new epoch candidate,
 * 2 ttl ms, 3 before (0 = none), 4 limit. Reads end where `readScript`'s do
 * (`pub` in WAIT mode). Returns { epoch, last offset, oldest offset held
 * (last + 1 when none), message JSON... }: the newest `limit` held below
 * `before`, oldest first. Epoch, bounds and messages come from one atomic
 * step, so the caller's archive read below `oldest` meets them exactly.
 */
export const pageScript = new LuaScript(
  'history.page',
  `
${ENSURE_LOG}
local last = tonumber(redis.call('HGET', meta, 'last'))
local pub = tonumber(redis.call('HGET', meta, 'pub') or '-1')
if pub >= 0 and pub < last then last = pub end
local oldest = last + 1
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if first[1] then
  local held = tonumber(string.match(first[1][1], '%-(%d+)$'))
  if held < oldest then oldest = held end
end
local top = last
local before = tonumber(ARGV[3])
if before > 0 and before - 1 < top then top = before - 1 end
local limit = tonumber(ARGV[4])
local out = { epoch, last, oldest }
if limit > 0 and top >= oldest then
  local rows = redis.call('XREVRANGE', stream, '0-' .. fmt(top), '0-' .. fmt(oldest), 'COUNT', limit)
  for i = #rows, 1, -1 do out[#out + 1] = rows[i][2][2] end
end
return out
`,
);

/**
 * ARGV: 1 new epoch candidate, 2 ttl ms, 3 mode (`recent` | `since`),
 * 4 limit, 5 position offset, 6 position epoch.
 *
 * The recovery rule mirrors canRecover in src/history/recovery.ts. With
 * `waitReplicas` the log ends at the last offset published (`pub`): the
 * pending ones are not read until a WAIT covered them.
 * Returns { recovered (0/1), epoch, last offset, message JSON... } oldest first.
 */
export const readScript = new LuaScript(
  'history.read',
  `
${ENSURE_LOG}
local last = tonumber(redis.call('HGET', meta, 'last'))
-- WAIT mode: a message is readable once published (no replica may lack it),
-- so a reader never sees one that a failover then drops.
local pub = tonumber(redis.call('HGET', meta, 'pub') or '-1')
if pub >= 0 and pub < last then last = pub end
local limit = tonumber(ARGV[4])
local out = { 0, epoch, last }
local function newest(n)
  if n <= 0 then return end
  local rows = redis.call('XREVRANGE', stream, '0-' .. fmt(last), '-', 'COUNT', n)
  for i = #rows, 1, -1 do out[#out + 1] = rows[i][2][2] end
end
if ARGV[3] == 'recent' then
  newest(limit)
  return out
end
local oldest = last + 1
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if first[1] then oldest = tonumber(string.match(first[1][1], '%-(%d+)$')) end
local off = tonumber(ARGV[5])
local ok
if off == 0 then
  ok = oldest <= 1 and last <= limit
elseif ARGV[6] ~= epoch or off > last or off + 1 < oldest then
  ok = false
else
  ok = last - off <= limit
end
if not ok then
  newest(limit)
  return out
end
out[1] = 1
if last > off then
  local rows = redis.call('XRANGE', stream, '0-' .. fmt(off + 1), '0-' .. fmt(last), 'COUNT', limit)
  for i = 1, #rows do out[#out + 1] = rows[i][2][2] end
end
return out
`,
);
