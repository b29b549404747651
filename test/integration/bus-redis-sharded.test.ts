/**
 * ShardedRedisBus on a private 3-master Redis Cluster: the Bus conformance
 * suite (3 buses = 3 nodes), slot spreading, and a shard subscriber killed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { BusEnvelope } from '../../src/bus/bus.js';
import { ChannelNamer } from '../../src/bus/channels.js';
import { createRedisBus } from '../../src/bus/redis.js';
import { ShardedRedisBus } from '../../src/bus/redis-sharded.js';
import { keySlot } from '../../src/redis/key-slot.js';
import { busConformance } from '../conformance/bus.js';
import { redisServerSkipReason, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisServerSkipReason()) ?? false;
let cluster: RedisCluster | undefined;

function sharded(prefix: string, nodeId: string, extra: { canaryIntervalMs?: number; canaryTimeoutMs?: number } = {}): ShardedRedisBus {
  if (!cluster) throw new Error('cluster not started');
  return new ShardedRedisBus({
    nodes: cluster.nodes,
    nodeId,
    namer: new ChannelNamer({ env: prefix, service: 'nerve' }),
    canaryIntervalMs: 500,
    reconnectMaxMs: 400,
    ...extra,
  });
}

describe('sharded Redis bus (private 3-master cluster)', { skip }, () => {
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  busConformance('redis-sharded (3 masters, 3 nodes)', (count, prefix) => Array.from({ length: count }, (_, i) => sharded(prefix, `n${i}`)));

  it('computes the same hash slots as the server, hash tags included', async () => {
    const names = ['', 'a', 'dev:nerve:default:room:lobby', 'x{tag}y', '{tag}', 'a{}b', 'é中🎉', 'x{a}{b}'];
    for (const name of names) {
      const slot = Number((await cluster!.cli(cluster!.nodes[0]!.port, 'cluster', 'keyslot', name)).trim());
      assert.equal(keySlot(name), slot, `slot of ${JSON.stringify(name)}`);
    }
  });

  it('spreads room channels over every master and keeps one subscriber connection per master', async () => {
    const prefix = testNamespace('spread');
    const namer = new ChannelNamer({ env: prefix, service: 'nerve' });
    const a = sharded(prefix, 'a');
    const b = sharded(prefix, 'b');
    const got: string[] = [];
    try {
      await a.start(() => {});
      await b.start((_channel, envelope) => got.push(envelope.id));
      const channels = Array.from({ length: 60 }, (_, i) => namer.room('default', `room-${i}`));
      await Promise.all(channels.map((channel) => b.acquire(channel)));
      const perMaster = await Promise.all(
        cluster!.nodes.map(
          async ({ port }) => (await cluster!.cli(port, 'pubsub', 'shardchannels', `${prefix}:*:room:*`)).trim().split('\n').filter(Boolean).length,
        ),
      );
      assert.equal(
        perMaster.reduce((x, y) => x + y, 0),
        60,
      );
      for (const count of perMaster) assert.ok(count > 0, `every master holds some rooms: ${perMaster.join(', ')}`);
      const sent = channels.map((): BusEnvelope => ({ v: 1, type: 'deliver', id: randomUUID(), origin: 'a', class: 'chat', payload: 'x' }));
      const counts = await Promise.all(channels.map((channel, i) => a.publish(channel, sent[i]!)));
      assert.deepEqual(
        counts,
        channels.map(() => 1),
      );
      await waitFor(() => got.length === 60, { what: '60 deliveries' });
      for (const { port } of cluster!.nodes) {
        const list = await cluster!.cli(port, 'client', 'list');
        assert.equal(list.split('\n').filter((line) => line.includes('name=nerve-bus-sub-b ')).length, 1, `one subscriber of node b on ${port}`);
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a killed shard subscriber reconnects and resubscribes its channels; the canary probes every shard', async () => {
    const prefix = testNamespace('shardkill');
    const namer = new ChannelNamer({ env: prefix, service: 'nerve' });
    const a = createRedisBus({ sharded: true, nodes: cluster!.nodes, nodeId: 'a', namer, reconnectMaxMs: 400, canaryIntervalMs: 0 });
    const b = sharded(prefix, 'b', { canaryIntervalMs: 0 });
    const got = new Set<string>();
    try {
      await a.start(() => {});
      await b.start((_channel, envelope) => got.add(envelope.id));
      const channels = Array.from({ length: 30 }, (_, i) => namer.room('default', `k-${i}`));
      await Promise.all(channels.map((channel) => b.acquire(channel)));
      assert.deepEqual(await b.probeNow(), [], 'every shard canary comes back');
      for (const { port } of cluster!.nodes) await cluster!.cli(port, 'client', 'kill', 'type', 'pubsub');
      await waitFor(() => b.stats().reconnects >= 3, { what: 'three shard subscribers reconnected' });
      await waitFor(
        async () => {
          const ids = channels.map(() => randomUUID());
          await Promise.all(
            channels.map((channel, i) => a.publish(channel, { v: 1, type: 'deliver', id: ids[i]!, origin: 'a', class: 'chat', payload: '' }).catch(() => 0)),
          );
          await waitFor(() => ids.every((id) => got.has(id)), { timeoutMs: 300, what: 'round' }).catch(() => undefined);
          return ids.every((id) => got.has(id));
        },
        { timeoutMs: 3000, what: 'delivery on every channel after the kill' },
      );
      assert.equal(b.health().ok, true);
      assert.deepEqual(await b.probeNow(), []);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
