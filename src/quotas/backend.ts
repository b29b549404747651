/**
 * Where quota counters live: `RedisQuotaBackend` (shared by every node, Lua
 * scripts on Redis' clock) or `MemoryQuotaBackend` (one process). The
 * enforcer (enforcer.ts) keeps per-message cost low by leasing tokens in
 * batches; a backend only answers the batched questions.
 */
import type { Cluster, Redis } from 'ioredis';
import { LuaScript } from '../redis/lua-script.js';

export type RateQuota = 'publishes' | 'signals';

export interface QuotaBackend {
  /**
   * Take up to `want` tokens of the current one-second window of
   * `tenant`'s `kind`, where at most `limit` are given out per window over
   * every node. Resolves with the tokens granted (0 when the window is used
   * up) and the milliseconds left in the window.
   */
  lease(tenant: string, kind: RateQuota, limit: number, want: number): Promise<{ granted: number; windowLeftMs: number }>;
  /**
   * Admit one more connection of `tenant` on this node, whose count would
   * then be `local`: true (and this node's count stored as `local`) when the
   * total over live nodes stays within `limit`; false (count stored as
   * `local - 1`) otherwise.
   */
  admitConnection(tenant: string, local: number, limit: number): Promise<boolean>;
  /** Store this node's connection count of each tenant (absolute) and keep it alive for the backend's TTL. */
  syncConnections(counts: ReadonlyMap<string, number>): Promise<void>;
  /** Admit `room` of `tenant`: true when it is live already or the live rooms stay within `limit`. */
  admitRoom(tenant: string, room: string, limit: number): Promise<boolean>;
  /** Keep these rooms (with local members) alive for the backend's TTL. */
  touchRooms(rooms: ReadonlyMap<string, readonly string[]>): Promise<void>;
  /** Add stored bytes to `tenant`'s total (which expires `ttlMs` after the last add); resolves with the total. */
  addStoredBytes(tenant: string, bytes: number, ttlMs: number): Promise<number>;
  close(): Promise<void>;
}

/** One process: the same rules with maps (no other node to share with). */
export class MemoryQuotaBackend implements QuotaBackend {
  private readonly windows = new Map<string, { second: number; used: number }>();
  private readonly connections = new Map<string, number>();
  private readonly rooms = new Map<string, Map<string, number>>();
  private readonly stored = new Map<string, { bytes: number; expiresAt: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async lease(tenant: string, kind: RateQuota, limit: number, want: number): Promise<{ granted: number; windowLeftMs: number }> {
    const now = this.now();
    const second = Math.floor(now / 1000);
    const key = `${kind}\u0000${tenant}`;
    let window = this.windows.get(key);
    if (!window || window.second !== second) this.windows.set(key, (window = { second, used: 0 }));
    const granted = Math.max(0, Math.min(want, limit - window.used));
    window.used += granted;
    return { granted, windowLeftMs: (second + 1) * 1000 - now };
  }

  async admitConnection(tenant: string, local: number, limit: number): Promise<boolean> {
    const admitted = local <= limit;
    this.connections.set(tenant, admitted ? local : local - 1);
    return admitted;
  }

  async syncConnections(counts: ReadonlyMap<string, number>): Promise<void> {
    for (const [tenant, count] of counts) this.connections.set(tenant, count);
  }

  async admitRoom(tenant: string, room: string, limit: number): Promise<boolean> {
    const now = this.now();
    let live = this.rooms.get(tenant);
    if (!live) this.rooms.set(tenant, (live = new Map<string, number>()));
    for (const [id, expiresAt] of live) if (expiresAt <= now) live.delete(id);
    if (!live.has(room) && live.size >= limit) return false;
    live.set(room, now + this.ttlMs);
    return true;
  }

  async touchRooms(rooms: ReadonlyMap<string, readonly string[]>): Promise<void> {
    const now = this.now();
    for (const [tenant, ids] of rooms) {
      let live = this.rooms.get(tenant);
      if (!live) this.rooms.set(tenant, (live = new Map<string, number>()));
      for (const id of ids) live.set(id, now + this.ttlMs);
    }
  }

  async addStoredBytes(tenant: string, bytes: number, ttlMs: number): Promise<number> {
    const now = this.now();
    const entry = this.stored.get(tenant);
    const total = (entry && entry.expiresAt > now ? entry.bytes : 0) + bytes;
    this.stored.set(tenant, { bytes: total, expiresAt: now + ttlMs });
    return total;
  }

  async close(): Promise<void> {}
}

/** Lease from the current second's counter; the window is Redis' clock, so nodes' clocks do not matter. */
const LEASE = new LuaScript(
  'quota-lease',
  `local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1] .. ':' .. t[1]
local used = tonumber(redis.call('GET', key) or '0')
local grant = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - used)
if grant < 0 then grant = 0 end
if grant > 0 then
  redis.call('INCRBY', key, grant)
  redis.call('PEXPIRE', key, 3000)
end
return {grant, (tonumber(t[1]) + 1) * 1000 - ms}`,
);

/**
 * KEYS: counts hash (node → connections), expiry hash (node → ms). ARGV:
 * node, local count, limit, ttl ms, mode (admit | sync). Counts of nodes
 * whose entry expired (a crashed node) are dropped before summing.
 */
const CONNECTIONS = new LuaScript(
  'quota-connections',
  `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node, count, limit, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local admitted = 1
if ARGV[5] == 'admit' then
  local others = 0
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    if fields[i] ~= node then
      local expires = tonumber(redis.call('HGET', KEYS[2], fields[i]) or '0')
      if expires > now then others = others + tonumber(fields[i + 1])
      else
        redis.call('HDEL', KEYS[1], fields[i])
        redis.call('HDEL', KEYS[2], fields[i])
      end
    end
  end
  if others + count > limit then
    admitted = 0
    count = count - 1
  end
end
redis.call('HSET', KEYS[1], node, count)
redis.call('HSET', KEYS[2], node, now + ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
redis.call('PEXPIRE', KEYS[2], ttl * 2)
return admitted`,
);

/** KEYS: zset of live rooms (score = expiry ms). ARGV: room, limit, ttl ms. */
const ROOM = new LuaScript(
  'quota-room',
  `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
return 1`,
);

/** KEYS: zset of live rooms. ARGV: ttl ms, rooms... */
const TOUCH_ROOMS = new LuaScript(
  'quota-touch-rooms',
  `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return 1`,
);

const ADD_BYTES = new LuaScript(
  'quota-stored-bytes',
  `local total = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return total`,
);

/**
 * Every node shares the counters. Key names: `{prefix}:quota:{tenant}:…`,
 * the tenant in a hash tag so one tenant's keys share a slot on Redis
 * Cluster (the lease script derives its window key from KEYS[1]).
 */
export class RedisQuotaBackend implements QuotaBackend {
  constructor(
    private readonly client: Redis | Cluster,
    private readonly prefix: string,
    private readonly nodeId: string,
    /** How long a node's connection counts and touched rooms stay alive without a refresh, ms. */
    private readonly ttlMs: number,
  ) {}

  private key(tenant: string, what: string): string {
    return `${this.prefix}:quota:{${encodeURIComponent(tenant)}}:${what}`;
  }

  async lease(tenant: string, kind: RateQuota, limit: number, want: number): Promise<{ granted: number; windowLeftMs: number }> {
    const [granted, left] = (await LEASE.run(this.client, [this.key(tenant, kind)], [limit, want])) as [number, number];
    return { granted, windowLeftMs: left };
  }

  async admitConnection(tenant: string, local: number, limit: number): Promise<boolean> {
    const keys = [this.key(tenant, 'conns'), this.key(tenant, 'conns-alive')];
    return (await CONNECTIONS.run(this.client, keys, [this.nodeId, local, limit, this.ttlMs, 'admit'])) === 1;
  }

  async syncConnections(counts: ReadonlyMap<string, number>): Promise<void> {
    await Promise.all(
      [...counts].map(([tenant, count]) =>
        CONNECTIONS.run(this.client, [this.key(tenant, 'conns'), this.key(tenant, 'conns-alive')], [this.nodeId, count, 0, this.ttlMs, 'sync']),
      ),
    );
  }

  async admitRoom(tenant: string, room: string, limit: number): Promise<boolean> {
    return (await ROOM.run(this.client, [this.key(tenant, 'rooms')], [room, limit, this.ttlMs])) === 1;
  }

  async touchRooms(rooms: ReadonlyMap<string, readonly string[]>): Promise<void> {
    await Promise.all([...rooms].map(([tenant, ids]) => TOUCH_ROOMS.run(this.client, [this.key(tenant, 'rooms')], [this.ttlMs, ...ids])));
  }

  async addStoredBytes(tenant: string, bytes: number, ttlMs: number): Promise<number> {
    return Number(await ADD_BYTES.run(this.client, [this.key(tenant, 'stored-bytes')], [bytes, ttlMs]));
  }

  async close(): Promise<void> {}
}
