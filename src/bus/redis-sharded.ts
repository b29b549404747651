/**
 * Redis Cluster hot lane with sharded Pub/Sub (Redis 7+: SPUBLISH /
 * SSUBSCRIBE): a sharded channel lives on the shard that owns its slot, so
 * adding shards adds capacity. One `Cluster` connection publishes
 * (auto-pipelined per node); one subscriber connection per master, managed
 * here rather than by ioredis, so that the bus decides from its reference
 * counts what each shard holds after a reconnect, failover or slot migration
 * (`rebalance`), and the canary probes each shard. Receiver counts are still
 * the number of subscribed nodes.
 */
import { Cluster, Redis } from 'ioredis';
import { fullJitter } from '../backoff.js';
import { errorText } from '../errors.js';
import { CLUSTER_SLOTS, keySlot } from '../redis/key-slot.js';
import { RedisBusCore } from './redis-core.js';
import { connectionOptions, type RedisBusOptions } from './redis-options.js';
import { unavailable } from './wire.js';

interface Shard {
  /** `host:port` of the master, as in `Cluster.slots`. */
  key: string;
  client: Redis;
  /** Channels this shard must hold: subscribed, or to subscribe once the connection is ready. */
  channels: Set<string>;
}

export class ShardedRedisBus extends RedisBusCore {
  readonly driver: string = 'redis-sharded';
  private cluster: Cluster | undefined;
  private readonly shards = new Map<string, Shard>();
  /** One canary channel per master, chosen to hash into a slot that master owns. */
  private canaries = new Map<string, string>();
  private readonly canaryBase: string;

  constructor(options: RedisBusOptions) {
    super({ ...options, sharded: true });
    this.canaryBase = `${this.options.namer.node(this.options.nodeId)}:canary`;
  }

  protected async connect(): Promise<void> {
    const deadline = Date.now() + this.options.startTimeoutMs;
    const { redisOptions } = this.options;
    const cluster = new Cluster(this.options.nodes, {
      // Cluster-level queue off: while the cluster is down a publish fails at once.
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: (attempt: number) => fullJitter(attempt, this.options.reconnectBaseMs, this.options.reconnectMaxMs),
      slotsRefreshTimeout: this.options.connectTimeoutMs,
      redisOptions: {
        connectionName: `nerve-bus-pub-${this.options.nodeId}`,
        connectTimeout: this.options.connectTimeoutMs,
        commandTimeout: this.options.commandTimeoutMs,
        ...redisOptions,
      },
    });
    this.cluster = cluster;
    this.watch(cluster, 'cluster', () => this.rebalance());
    cluster.on('node error', (error: unknown, key: string) => this.log.debug({ node: key, err: errorText(error) }, 'redis cluster node error'));
    // Emitted after every slot map refresh (periodic, on MOVED, on reconnect).
    cluster.on('refresh', () => this.rebalance());
    await this.waitReady(cluster, this.options.startTimeoutMs, 'redis cluster');
    this.rebalance();
    await Promise.all(
      [...this.shards.values()].map((shard) => this.waitReady(shard.client, Math.max(0, deadline - Date.now()), `redis subscriber ${shard.key}`)),
    );
    // The ready handler of each shard subscribes its canary; wait until that is done.
    await Promise.all([...this.shards.values()].map((shard) => this.resubscribeShard(shard)));
  }

  private ownerOf(channel: string): string | undefined {
    return this.cluster?.slots[keySlot(channel)]?.[0];
  }

  private masters(): Set<string> {
    const masters = new Set<string>();
    const slots = this.cluster?.slots ?? [];
    for (const owners of slots) {
      const master = owners?.[0];
      if (master !== undefined) masters.add(master);
    }
    return masters;
  }

  private shardFor(key: string): Shard {
    let shard = this.shards.get(key);
    if (shard) return shard;
    const at = key.lastIndexOf(':');
    const client = new Redis({
      ...connectionOptions(this.options, 'sub'),
      host: key.slice(0, at),
      port: Number(key.slice(at + 1)),
    });
    shard = { key, client, channels: new Set() };
    const created = shard;
    this.shards.set(key, created);
    this.watch(client, `subscriber ${key}`, () => {});
    // First ready and every reconnect: (re)subscribe what this shard must hold.
    client.on('ready', () => void this.resubscribeShard(created));
    client.on('smessageBuffer', (channel: Buffer, message: Buffer) => this.onWireMessage(channel, message));
    return created;
  }

  /**
   * SSUBSCRIBE (one command per channel: one slot each) everything the shard
   * must hold, and report them (`onResubscribed`: they may have missed
   * messages). `MOVED` means our slot map is stale: reconnecting would retry
   * it, deaf, until ioredis refreshes it seconds later, so the map is
   * refreshed at once and the channels moved to their owners; any other
   * failure reconnects the shard and starts over.
   */
  private async resubscribeShard(shard: Shard): Promise<void> {
    if (this.state === 'closed' || shard.client.status !== 'ready') return;
    this.rebalance();
    const channels = [...shard.channels];
    if (channels.length === 0) return;
    const results = await Promise.allSettled(channels.map((channel) => shard.client.ssubscribe(channel)));
    if (this.closed() || this.shards.get(shard.key) !== shard) return;
    const done: string[] = [];
    const moved: string[] = [];
    let failure: unknown;
    results.forEach((result, i) => {
      const channel = channels[i]!;
      if (result.status === 'fulfilled') done.push(channel);
      else if (errorText(result.reason).startsWith('MOVED')) moved.push(channel);
      else failure ??= result.reason;
    });
    if (failure !== undefined) {
      this.log.warn({ shard: shard.key, err: errorText(failure) }, 'redis shard resubscribe failed; reconnecting it');
      this.replace(shard.client, `resubscribe failed: ${errorText(failure)}`);
      return;
    }
    this.log.debug({ shard: shard.key, channels: done.length, moved: moved.length }, 'redis shard subscriptions restored');
    this.reportResubscribed(done);
    if (moved.length === 0) return;
    this.log.info({ shard: shard.key, channels: moved.length }, 'redis shard answered MOVED; refreshing the slot map');
    await this.refreshSlots();
    if (this.closed()) return;
    // Moves every channel whose owner changed; `hold` subscribes and reports it on its new shard.
    this.rebalance();
    const stuck = moved.filter((channel) => shard.channels.has(channel));
    if (stuck.length === 0) return;
    // The refreshed map still names this shard: the redirection was transient (a migration in progress). Retry once, then reconnect.
    try {
      await Promise.all(stuck.map((channel) => shard.client.ssubscribe(channel)));
      this.reportResubscribed(stuck);
    } catch (error) {
      if (this.closed() || this.shards.get(shard.key) !== shard) return;
      this.log.warn({ shard: shard.key, err: errorText(error) }, 'redis shard resubscribe failed after a slot refresh; reconnecting it');
      this.replace(shard.client, `resubscribe failed: ${errorText(error)}`);
    }
  }

  /**
   * Bring shard connections in line with the slot map: one per master;
   * every channel on the shard owning its slot (after a failover or a slot
   * migration the owner changes); the canaries recomputed; connections of
   * nodes that are no longer masters closed.
   */
  private rebalance(): void {
    if (this.state === 'closed' || !this.cluster) return;
    const masters = this.masters();
    if (masters.size === 0) return; // slot map not loaded yet
    for (const key of masters) this.shardFor(key);

    for (const shard of [...this.shards.values()]) {
      for (const channel of [...shard.channels]) {
        const owner = this.ownerOf(channel);
        if (owner !== undefined && owner !== shard.key) this.move(channel, shard, owner);
      }
    }

    const next = new Map<string, string>();
    for (let k = 0; next.size < masters.size && k < CLUSTER_SLOTS * 4; k += 1) {
      const channel = `${this.canaryBase}:${k}`;
      const owner = this.ownerOf(channel);
      if (owner !== undefined && !next.has(owner)) next.set(owner, channel);
    }
    const keep = new Set(next.values());
    for (const channel of this.canaries.values()) {
      if (!keep.has(channel)) this.drop(channel);
    }
    for (const [owner, channel] of next) this.hold(channel, this.shardFor(owner));
    this.canaries = next;

    for (const [key, shard] of this.shards) {
      if (!masters.has(key) && shard.channels.size === 0) {
        this.shards.delete(key);
        void this.closeClient(shard.client);
      }
    }
  }

  /**
   * Make `shard` hold `channel` (subscribing now if connected, else on its
   * next ready, which reports it). `moved`: the channel comes from another
   * shard and may have missed messages meanwhile, so it is reported once live.
   */
  private hold(channel: string, shard: Shard, moved = false): void {
    if (shard.channels.has(channel)) return;
    shard.channels.add(channel);
    if (shard.client.status === 'ready') {
      shard.client.ssubscribe(channel).then(
        () => {
          if (moved && !this.closed()) this.reportResubscribed([channel]);
        },
        (error: unknown) => {
          if (this.state === 'closed') return;
          this.log.warn({ shard: shard.key, channel, err: errorText(error) }, 'redis shard subscribe failed; reconnecting it');
          this.replace(shard.client, `subscribe failed: ${errorText(error)}`);
        },
      );
    }
  }

  private drop(channel: string): void {
    for (const shard of this.shards.values()) {
      if (shard.channels.delete(channel) && shard.client.status === 'ready') shard.client.sunsubscribe(channel).catch(() => {});
    }
  }

  private move(channel: string, from: Shard, ownerKey: string): void {
    from.channels.delete(channel);
    // The old owner may already have dropped it (Redis sends an unsolicited
    // sunsubscribe when a slot moves); a failed SUNSUBSCRIBE is harmless.
    if (from.client.status === 'ready') from.client.sunsubscribe(channel).catch(() => {});
    this.hold(channel, this.shardFor(ownerKey), true);
    this.log.info({ channel, from: from.key, to: ownerKey }, 'redis shard channel moved');
  }

  private refreshSlots(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.cluster) return resolve();
      this.cluster.refreshSlotsCache(() => resolve());
    });
  }

  protected async subscribeChannel(channel: string): Promise<void> {
    for (let attempt = 0; ; attempt += 1) {
      if (this.state !== 'running') throw unavailable(`redis-sharded bus is ${this.state}`);
      const owner = this.ownerOf(channel);
      if (owner === undefined) throw unavailable(`no master owns the slot of ${channel}`);
      const shard = this.shardFor(owner);
      if (shard.client.status !== 'ready') {
        throw this.subscribeFailure(channel, new Error(`subscriber for ${owner} is ${shard.client.status}`));
      }
      // Recorded first, so a reconnect while the command is in flight resubscribes it.
      shard.channels.add(channel);
      try {
        await this.viaLink(shard.client, 'SSUBSCRIBE', () => shard.client.ssubscribe(channel));
        return;
      } catch (error) {
        // Take it off whichever shard holds it now (a rebalance while the
        // command was in flight may have moved it) and SUNSUBSCRIBE there: a
        // timed-out SSUBSCRIBE may still have reached the server, and a failed
        // acquire must not leak a subscription.
        this.drop(channel);
        // Our slot map was stale (a migration or failover we had not seen yet).
        if (attempt === 0 && errorText(error).startsWith('MOVED')) {
          await this.refreshSlots();
          continue;
        }
        throw this.subscribeFailure(channel, error);
      }
    }
  }

  protected async unsubscribeChannel(channel: string): Promise<void> {
    for (const shard of this.shards.values()) {
      if (!shard.channels.delete(channel)) continue;
      if (shard.client.status !== 'ready') continue;
      try {
        await shard.client.sunsubscribe(channel);
      } catch (error) {
        this.log.debug({ channel, err: errorText(error) }, 'redis shard unsubscribe failed; the connection is going away');
      }
    }
  }

  protected sendPublish(channel: string, bytes: Buffer): Promise<number> {
    const cluster = this.cluster!;
    // The node-level commandTimeout does not cover redirections and cluster
    // retries; this bounds the whole publish.
    // Through the cluster's link: a publish sent and not answered is an unknown outcome (the probes find the silent node).
    return this.viaLink(
      cluster,
      'SPUBLISH',
      () =>
        new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`SPUBLISH timed out after ${this.options.commandTimeoutMs} ms`)), this.options.commandTimeoutMs);
          cluster.spublish(channel, bytes).then(
            (count) => {
              clearTimeout(timer);
              resolve(Number(count));
            },
            (error: unknown) => {
              clearTimeout(timer);
              reject(error instanceof Error ? error : new Error(String(error)));
            },
          );
        }),
    );
  }

  protected publisherProblem(): string | undefined {
    const status = this.cluster?.status;
    return status === 'ready' ? undefined : `redis cluster is ${status ?? 'not connected'}`;
  }

  protected connectionProblem(): string | undefined {
    const problems: string[] = [];
    const publisher = this.publisherProblem();
    if (publisher !== undefined) problems.push(publisher);
    for (const key of this.masters()) {
      const status = this.shards.get(key)?.client.status ?? 'missing';
      if (status !== 'ready') problems.push(`subscriber ${key} ${status}`);
    }
    return problems.length === 0 ? undefined : problems.join(', ');
  }

  protected canaryChannels(): string[] {
    return [...this.canaries.values()];
  }

  private shardHolding(channel: string): Shard | undefined {
    for (const shard of this.shards.values()) if (shard.channels.has(channel)) return shard;
    return undefined;
  }

  protected canProbe(channel: string): boolean {
    return this.cluster?.status === 'ready' && this.shardHolding(channel)?.client.status === 'ready';
  }

  protected recoverDeaf(channel: string): void {
    this.replace(this.shardHolding(channel)?.client, 'canary did not come back');
  }

  protected async disconnect(): Promise<void> {
    const shards = [...this.shards.values()];
    this.shards.clear();
    await Promise.all([this.closeClient(this.cluster), ...shards.map((shard) => this.closeClient(shard.client))]);
  }
}
