/**
 * What the Pusher side keeps beyond nerve's lanes, cluster-wide: each
 * node's Pusher subscription counts per channel (expiring with the node),
 * presence members' `user_info`, and each cache channel's last event for
 * 30 minutes. `MemoryPusherStore` serves one node, `RedisPusherStore` a
 * cluster; a tenant's keys share the hash tag `{pusher:tenant}`, so it
 * works on Redis Cluster too.
 */
import type { Cluster, Redis } from 'ioredis';
import { escapeComponent } from '../bus/channels.js';
import { closeScriptConnection, scriptConnection, type ScriptConnectionOptions } from '../redis/script-connection.js';
import { CACHE_TTL_MS } from './protocol.js';

export interface PusherStore {
  start(): Promise<void>;
  /** This node now holds `count` subscriptions of `channel` (0: none). Written in the background. */
  setLocalCount(tenant: string, channel: string, count: number): void;
  /** Subscriptions per channel summed over live nodes; channels with none are absent. */
  counts(tenant: string): Promise<Map<string, number>>;
  setMemberInfo(tenant: string, channel: string, user: string, info: string): Promise<void>;
  /** The stored `user_info` (JSON text) of those users; users without one are absent. */
  memberInfo(tenant: string, channel: string, users: string[]): Promise<Map<string, string>>;
  removeMemberInfo(tenant: string, channel: string, user: string): Promise<void>;
  /** Keep `frame` (an encoded Pusher event) as the channel's last event, for CACHE_TTL_MS. */
  setCached(tenant: string, channel: string, frame: string): Promise<void>;
  cached(tenant: string, channel: string): Promise<string | undefined>;
  /** Idempotent. */
  close(): Promise<void>;
}

export class MemoryPusherStore implements PusherStore {
  private readonly local = new Map<string, Map<string, number>>();
  private readonly infos = new Map<string, Map<string, string>>();
  private readonly cache = new Map<string, { frame: string; expires: number }>();

  async start(): Promise<void> {}

  setLocalCount(tenant: string, channel: string, count: number): void {
    let counts = this.local.get(tenant);
    if (!counts) this.local.set(tenant, (counts = new Map<string, number>()));
    if (count > 0) counts.set(channel, count);
    else counts.delete(channel);
  }

  async counts(tenant: string): Promise<Map<string, number>> {
    return new Map(this.local.get(tenant) ?? []);
  }

  async setMemberInfo(tenant: string, channel: string, user: string, info: string): Promise<void> {
    const key = `${tenant}\u0000${channel}`;
    let infos = this.infos.get(key);
    if (!infos) this.infos.set(key, (infos = new Map<string, string>()));
    infos.set(user, info);
  }

  async memberInfo(tenant: string, channel: string, users: string[]): Promise<Map<string, string>> {
    const infos = this.infos.get(`${tenant}\u0000${channel}`);
    const found = new Map<string, string>();
    for (const user of users) {
      const info = infos?.get(user);
      if (info !== undefined) found.set(user, info);
    }
    return found;
  }

  async removeMemberInfo(tenant: string, channel: string, user: string): Promise<void> {
    const key = `${tenant}\u0000${channel}`;
    const infos = this.infos.get(key);
    infos?.delete(user);
    if (infos?.size === 0) this.infos.delete(key);
  }

  async setCached(tenant: string, channel: string, frame: string): Promise<void> {
    this.cache.set(`${tenant}\u0000${channel}`, { frame, expires: Date.now() + CACHE_TTL_MS });
  }

  async cached(tenant: string, channel: string): Promise<string | undefined> {
    const key = `${tenant}\u0000${channel}`;
    const entry = this.cache.get(key);
    if (entry && entry.expires <= Date.now()) this.cache.delete(key);
    return entry && entry.expires > Date.now() ? entry.frame : undefined;
  }

  async close(): Promise<void> {}
}

export interface RedisPusherStoreOptions extends ScriptConnectionOptions {
  /** `{env}:{service}` (ChannelNamer.prefix): keys are `{prefix}:pusher:{tenant}:...`. Required. */
  prefix: string;
  /** This node's id: its subscription counts are its own hash. Required. */
  nodeId: string;
  /** How often the node rewrites its counts and extends their life, ms; they expire after three missed beats. Default 2000. */
  beatMs?: number;
}

/** Member infos outlive their members by at most this long (a crashed node's members are never removed explicitly). */
const INFO_TTL_MS = 24 * 3_600_000;

export class RedisPusherStore implements PusherStore {
  private readonly client: Redis | Cluster;
  private readonly owned: boolean;
  private readonly prefix: string;
  private readonly nodeId: string;
  private readonly beatMs: number;
  /** This node's counts, per tenant: the truth its hash is rewritten from. */
  private readonly local = new Map<string, Map<string, number>>();
  private beat: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: RedisPusherStoreOptions) {
    const { client, owned } = scriptConnection(options);
    this.client = client;
    this.owned = owned;
    this.prefix = options.prefix;
    this.nodeId = options.nodeId;
    this.beatMs = options.beatMs ?? 2000;
    // Failures are seen by the calls (counted and answered by the caller); the connection reconnects by itself.
    this.client.on('error', () => {});
  }

  private key(tenant: string, ...rest: string[]): string {
    return `${this.prefix}:pusher:{${escapeComponent(tenant)}}:${rest.join(':')}`;
  }

  async start(): Promise<void> {
    if (this.owned && 'connect' in this.client && this.client.status === 'wait') await this.client.connect();
    this.beat = setInterval(() => {
      for (const tenant of this.local.keys()) void this.writeCounts(tenant);
    }, this.beatMs);
    this.beat.unref();
  }

  setLocalCount(tenant: string, channel: string, count: number): void {
    let counts = this.local.get(tenant);
    if (!counts) this.local.set(tenant, (counts = new Map<string, number>()));
    if (count > 0) counts.set(channel, count);
    else counts.delete(channel);
    const hash = this.key(tenant, 'occ', escapeComponent(this.nodeId));
    const write = count > 0 ? this.client.hset(hash, channel, count) : this.client.hdel(hash, channel);
    // The next beat rewrites the whole hash: a lost write is repaired within beatMs.
    write.catch(() => {});
    if (count > 0) void this.touchNode(tenant);
  }

  /** Rewrite this node's hash of `tenant` from its local counts and extend its life. */
  private async writeCounts(tenant: string): Promise<void> {
    const counts = this.local.get(tenant);
    const hash = this.key(tenant, 'occ', escapeComponent(this.nodeId));
    const life = this.beatMs * 3;
    try {
      const multi = this.client.multi().del(hash);
      if (counts && counts.size > 0) multi.hset(hash, Object.fromEntries(counts)).pexpire(hash, life);
      multi.zadd(this.key(tenant, 'occ-nodes'), Date.now() + life, this.nodeId).pexpire(this.key(tenant, 'occ-nodes'), life);
      await multi.exec();
    } catch {
      // Retried at the next beat.
    }
  }

  private async touchNode(tenant: string): Promise<void> {
    const life = this.beatMs * 3;
    try {
      await this.client
        .multi()
        .pexpire(this.key(tenant, 'occ', escapeComponent(this.nodeId)), life)
        .zadd(this.key(tenant, 'occ-nodes'), Date.now() + life, this.nodeId)
        .pexpire(this.key(tenant, 'occ-nodes'), life)
        .exec();
    } catch {
      // Retried at the next beat.
    }
  }

  async counts(tenant: string): Promise<Map<string, number>> {
    const nodes = this.key(tenant, 'occ-nodes');
    const live = await this.client.zrangebyscore(nodes, Date.now(), '+inf');
    const hashes = await Promise.all(live.map((node) => this.client.hgetall(this.key(tenant, 'occ', escapeComponent(node)))));
    const total = new Map<string, number>();
    for (const hash of hashes) {
      for (const [channel, count] of Object.entries(hash)) {
        const value = Number(count);
        if (value > 0) total.set(channel, (total.get(channel) ?? 0) + value);
      }
    }
    return total;
  }

  async setMemberInfo(tenant: string, channel: string, user: string, info: string): Promise<void> {
    const key = this.key(tenant, 'info', escapeComponent(channel));
    await this.client.multi().hset(key, user, info).pexpire(key, INFO_TTL_MS).exec();
  }

  async memberInfo(tenant: string, channel: string, users: string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    if (users.length === 0) return found;
    const values = await this.client.hmget(this.key(tenant, 'info', escapeComponent(channel)), ...users);
    users.forEach((user, index) => {
      const value = values[index];
      if (typeof value === 'string') found.set(user, value);
    });
    return found;
  }

  async removeMemberInfo(tenant: string, channel: string, user: string): Promise<void> {
    await this.client.hdel(this.key(tenant, 'info', escapeComponent(channel)), user);
  }

  async setCached(tenant: string, channel: string, frame: string): Promise<void> {
    await this.client.set(this.key(tenant, 'cache', escapeComponent(channel)), frame, 'PX', CACHE_TTL_MS);
  }

  async cached(tenant: string, channel: string): Promise<string | undefined> {
    const value = await this.client.get(this.key(tenant, 'cache', escapeComponent(channel)));
    return value ?? undefined;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.beat) clearInterval(this.beat);
      // Leave at once rather than after three beats: this node's subscriptions are gone.
      await Promise.all(
        [...this.local.keys()].map((tenant) =>
          this.client
            .multi()
            .del(this.key(tenant, 'occ', escapeComponent(this.nodeId)))
            .zrem(this.key(tenant, 'occ-nodes'), this.nodeId)
            .exec()
            .catch(() => {}),
        ),
      );
      if (this.owned) await closeScriptConnection(this.client);
    })();
    return this.closing;
  }
}
