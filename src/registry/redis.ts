/**
 * The node registry on Redis: two keys per `{env}:{service}` namespace, under
 * one hash tag so they share a slot on a Redis Cluster:
 *   {prefix}:{_registry}:nodes    hash    node id → entry (JSON)
 *   {prefix}:{_registry}:expiry   zset    node id → expiry (ms, Redis clock)
 * A heartbeat is one script (HSET + ZADD with `TIME` + ttl); a read deletes
 * the expired ids and returns the rest with the server time, so ages are
 * measured on one clock. Both keys get a PEXPIRE, so a namespace whose nodes
 * all died leaves nothing behind.
 */
import type { Cluster, Redis } from 'ioredis';
import { LuaScript } from '../redis/lua-script.js';
import { closeScriptConnection, scriptConnection, watchScriptConnection, type ScriptConnectionOptions } from '../redis/script-connection.js';
import type { LinkStats, RedisLink } from '../redis/link.js';
import { keyPrefix } from '../redis/script-lane.js';
import type { NodeEntry, NodeRecord, NodeRegistry } from './registry.js';

export interface RedisNodeRegistryOptions extends ScriptConnectionOptions {
  /** Key prefix, normally `ChannelNamer.prefix` (`{env}:{service}`). Must not contain `{` or `}`. Default `dev:nerve`. */
  prefix?: string;
  /** Told when the connection is ready again after it was lost or replaced (the node writes its entry again at once). Default nothing. */
  onRestored?: () => void;
}

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** KEYS: 1 nodes, 2 expiry. ARGV: 1 id, 2 entry JSON, 3 ttl ms. */
const announceScript = new LuaScript(
  'registry.announce',
  `${NOW}local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
local keep = ttl * 10
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
if redis.call('PTTL', KEYS[2]) < keep then redis.call('PEXPIRE', KEYS[2], keep) end
return now`,
);

/** KEYS: 1 nodes, 2 expiry. Returns {now, id1, json1, expiry1, ...}. */
const listScript = new LuaScript(
  'registry.list',
  `${NOW}local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
local out = { tostring(now) }
local live = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #live, 2 do
  local value = redis.call('HGET', KEYS[1], live[i])
  if value then
    out[#out + 1] = live[i]
    out[#out + 1] = value
    out[#out + 1] = live[i + 1]
  end
end
return out`,
);

/** KEYS: 1 nodes, 2 expiry. ARGV: 1 id. */
const removeScript = new LuaScript(
  'registry.remove',
  `redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1`,
);

export class RedisNodeRegistry implements NodeRegistry {
  readonly driver = 'redis';
  private readonly client: Redis | Cluster;
  private readonly owned: boolean;
  private readonly link: RedisLink;
  private readonly keys: [string, string];
  private closing: Promise<void> | undefined;
  /** Last connection error, for logs; the registry never fails a request of the node. */
  lastError: string | undefined;

  constructor(options: RedisNodeRegistryOptions) {
    const prefix = keyPrefix(options.prefix);
    this.keys = [`${prefix}:{_registry}:nodes`, `${prefix}:{_registry}:expiry`];
    const { client, owned } = scriptConnection(options);
    this.client = client;
    this.owned = owned;
    this.client.on('error', (error: Error) => {
      this.lastError = error.message;
    });
    this.link = watchScriptConnection({
      client,
      owned,
      lane: 'registry',
      probeIntervalMs: options.probeIntervalMs,
      log: options.logger,
      ...(options.onRestored ? { onRestored: options.onRestored } : {}),
    });
  }

  /** Probe failures and replacements of the registry's connection, for metrics. */
  linkStats(): LinkStats[] {
    return [{ ...this.link.stats }];
  }

  private async ready(): Promise<void> {
    if (this.closing) throw new Error('registry is closed');
    if (this.owned && this.client.status === 'wait') await this.client.connect();
  }

  async announce(entry: NodeEntry): Promise<void> {
    await this.ready();
    await announceScript.run(this.client, this.keys, [entry.id, JSON.stringify(entry), entry.ttlMs]);
  }

  async remove(id: string): Promise<void> {
    await this.ready();
    await removeScript.run(this.client, this.keys, [id]);
  }

  async list(): Promise<NodeRecord[]> {
    await this.ready();
    const reply = (await listScript.run(this.client, this.keys, [])) as Array<string | Buffer>;
    const text = reply.map((item) => item.toString());
    const now = Number(text[0]);
    const records: NodeRecord[] = [];
    for (let i = 1; i + 2 < text.length; i += 3) {
      const json = text[i + 1];
      const expiry = Number(text[i + 2]);
      if (json === undefined) break;
      let entry: NodeEntry;
      try {
        entry = JSON.parse(json) as NodeEntry;
      } catch {
        continue; // not ours to crash on: a foreign or corrupt value is skipped
      }
      records.push({ ...entry, heartbeatAgeMs: Math.max(0, now - (expiry - entry.ttlMs)) });
    }
    return records.sort((a, b) => a.id.localeCompare(b.id));
  }

  close(): Promise<void> {
    this.link.stop();
    this.closing ??= this.owned && this.client.status !== 'wait' && this.client.status !== 'end' ? closeScriptConnection(this.client) : Promise.resolve();
    return this.closing;
  }
}
