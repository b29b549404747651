/**
 * RedisStreamsHistory on a private 3-master Redis Cluster (project issue 3):
 * the History conformance suite with the script SPUBLISHing, observed
 * through a ShardedRedisBus, plus the slot rules of sharded mode.
 *
 * The conformance suite names its channel `${ns}:room:${room}` (room
 * `{ tenant: `${ns}-t`, room }`), which has no hash tag and so lies in
 * another slot than the room's keys; a script may touch one slot only. Here
 * both the history and the observing bus add the room's tag to that name
 * (`shardChannel`), which is what ChannelNamer's `hashTags` does in a node.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Cluster } from 'ioredis';
import type { Bus, BusEnvelope, BusMessageHandler } from '../../src/bus/bus.js';
import { ChannelNamer, hashTag } from '../../src/bus/channels.js';
import { ShardedRedisBus } from '../../src/bus/redis-sharded.js';
import { keySlot } from '../../src/redis/key-slot.js';
import type {
  AppendResult,
  AppendTarget,
  ChatDraft,
  History,
  HistoryPage,
  PageQuery,
  RecentResult,
  RecoveryResult,
  RoomRef,
} from '../../src/history/history.js';
import { RedisStreamsHistory } from '../../src/history/redis-streams.js';
import type { RedisStreamsHistoryOptions } from '../../src/history/redis-streams-options.js';
import type { LaneHealth } from '../../src/lanes.js';
import type { ChatMessage, StreamPosition } from '../../packages/protocol/src/frames.js';
import { historyConformance } from '../conformance/history.js';
import { redisServerSkipReason, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisServerSkipReason()) ?? false;
let cluster: RedisCluster | undefined;

function seeds(): Array<{ host: string; port: number }> {
  if (!cluster) throw new Error('cluster not started');
  return cluster.nodes;
}

/** The room a conformance channel belongs to (see the module comment). */
function conformanceRoom(channel: string): RoomRef {
  const at = channel.lastIndexOf(':room:');
  if (at < 0) throw new Error(`not a conformance channel: ${channel}`);
  return { tenant: `${channel.slice(0, at)}-t`, room: channel.slice(at + ':room:'.length) };
}

/** `channel` moved into the slot of `room`'s keys. */
function shardChannel(channel: string, room: RoomRef): string {
  return `${channel}:${hashTag(room.tenant, room.room)}`;
}

/** The history under test, publishing every room's messages on the shard channel of that room. */
class ShardChannelHistory implements History {
  readonly driver: string;
  constructor(readonly inner: RedisStreamsHistory) {
    this.driver = inner.driver;
  }
  start(): Promise<void> {
    return this.inner.start();
  }
  append(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult> {
    return this.inner.append(room, draft, { ...target, channel: shardChannel(target.channel, room) });
  }
  recent(room: RoomRef, limit: number): Promise<RecentResult> {
    return this.inner.recent(room, limit);
  }
  since(room: RoomRef, position: StreamPosition, limit: number): Promise<RecoveryResult> {
    return this.inner.since(room, position, limit);
  }
  page(room: RoomRef, query: PageQuery): Promise<HistoryPage> {
    return this.inner.page(room, query);
  }
  health(): LaneHealth {
    return this.inner.health();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A ShardedRedisBus seen through the conformance suite's channel names. */
class ShardChannelBus implements Bus {
  readonly driver = 'redis-sharded-observer';
  private readonly inner: ShardedRedisBus;
  private readonly original = new Map<string, string>();

  constructor(prefix: string) {
    this.inner = new ShardedRedisBus({
      nodes: seeds(),
      nodeId: `observer-${randomUUID()}`,
      namer: new ChannelNamer({ env: prefix, service: 'nerve', hashTags: true }),
      canaryIntervalMs: 0,
    });
  }
  private map(channel: string): string {
    const mapped = shardChannel(channel, conformanceRoom(channel));
    this.original.set(mapped, channel);
    return mapped;
  }
  start(onMessage: BusMessageHandler): Promise<void> {
    return this.inner.start((channel, envelope) => onMessage(this.original.get(channel) ?? channel, envelope));
  }
  acquire(channel: string): Promise<void> {
    return this.inner.acquire(this.map(channel));
  }
  release(channel: string): Promise<void> {
    return this.inner.release(this.map(channel));
  }
  publish(channel: string, envelope: BusEnvelope): Promise<number> {
    return this.inner.publish(this.map(channel), envelope);
  }
  channels(): string[] {
    return this.inner.channels().map((channel) => this.original.get(channel) ?? channel);
  }
  health(): LaneHealth {
    return this.inner.health();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

function history(options: Partial<RedisStreamsHistoryOptions> = {}): RedisStreamsHistory {
  return new RedisStreamsHistory({ nodes: seeds(), publishCommand: 'SPUBLISH', prefix: testNamespace('hc'), ...options });
}

const draft = (room: RoomRef, n: number): ChatDraft => ({ op: 'message', class: 'chat', room: room.room, id: `m${n}`, from: 'alice', ts: n, data: { n } });
const target = (channel: string): AppendTarget => ({
  channel,
  envelope: (message) => ({ v: 1, type: 'deliver', id: message.id, origin: 'n1', class: 'chat', payload: JSON.stringify(message) }),
});

describe('RedisStreamsHistory on a private 3-master Redis Cluster', { skip }, () => {
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  const namespace = testNamespace('hcc');
  historyConformance(
    'redis-streams (cluster, SPUBLISH)',
    (_bus, options) => new ShardChannelHistory(history({ prefix: `${namespace}:c`, approximateTrim: false, ...options })),
    undefined,
    { createBus: () => new ShardChannelBus(namespace) },
  );

  it('SPUBLISHes each room on its hash-tagged channel, rooms spread over every master', async () => {
    const prefix = testNamespace('spread');
    const namer = new ChannelNamer({ env: prefix, service: 'nerve', hashTags: true });
    const writer = history({ prefix: namer.prefix });
    const bus = new ShardedRedisBus({ nodes: seeds(), nodeId: 'observer', namer, canaryIntervalMs: 0 });
    const seen = new Map<string, number[]>();
    try {
      await Promise.all([
        writer.start(),
        bus.start((channel, envelope) => {
          const list = seen.get(channel) ?? [];
          list.push((JSON.parse(envelope.payload) as ChatMessage).offset);
          seen.set(channel, list);
        }),
      ]);
      const rooms = Array.from({ length: 30 }, (_, i): RoomRef => ({ tenant: 'acme', room: `room-${i}` }));
      const channels = rooms.map((room) => namer.room(room.tenant, room.room));
      await Promise.all(channels.map((channel) => bus.acquire(channel)));
      for (const [i, room] of rooms.entries()) {
        const slot = Number((await cluster!.cli(cluster!.nodes[0]!.port, 'cluster', 'keyslot', channels[i]!)).trim());
        assert.equal(slot, keySlot(writer.key(room, 'meta')), `channel and keys of ${room.room} share a slot`);
      }
      await Promise.all(rooms.flatMap((room, i) => [1, 2, 3].map((n) => writer.append(room, draft(room, n), target(channels[i]!)))));
      await waitFor(() => channels.every((channel) => seen.get(channel)?.length === 3), { what: '3 messages on each of 30 rooms' });
      for (const channel of channels) assert.deepEqual(seen.get(channel), [1, 2, 3], channel);
      const perMaster = await Promise.all(
        cluster!.nodes.map(
          async ({ port }) => (await cluster!.cli(port, 'pubsub', 'shardchannels', `${prefix}:*:room:*`)).trim().split('\n').filter(Boolean).length,
        ),
      );
      assert.equal(
        perMaster.reduce((x, y) => x + y, 0),
        30,
      );
      for (const count of perMaster) assert.ok(count > 0, `every master holds some rooms: ${perMaster.join(', ')}`);
    } finally {
      await Promise.all([writer.close(), bus.close()]);
    }
  });

  it('refuses, with a clear internal error, a channel outside the room slot', async () => {
    const writer = history();
    await writer.start();
    try {
      const room: RoomRef = { tenant: 'acme', room: 'lobby' };
      const untagged = new ChannelNamer({ env: 'x', service: 'nerve' }).room('acme', 'lobby');
      assert.notEqual(keySlot(untagged), keySlot(writer.key(room, 'meta')));
      await assert.rejects(writer.append(room, draft(room, 1), target(untagged)), (error: Error & { code?: string }) => {
        assert.equal(error.name, 'NerveError');
        assert.equal(error.code, 'internal');
        assert.match(error.message, /hashTags/);
        return true;
      });
    } finally {
      await writer.close();
    }
  });

  it('runs on a Cluster connection owned by the caller, and leaves it open', async () => {
    const client = new Cluster(seeds(), { lazyConnect: true });
    client.on('error', () => {});
    await client.connect();
    const shared = new RedisStreamsHistory({ client, publishCommand: 'SPUBLISH', prefix: testNamespace('own') });
    try {
      await shared.start();
      const room: RoomRef = { tenant: 't', room: 'r' };
      const namer = new ChannelNamer({ env: 'e', service: 's', hashTags: true });
      assert.equal((await shared.append(room, draft(room, 1), target(namer.room('t', 'r')))).message.offset, 1);
      assert.equal((await shared.recent(room, 5)).messages.length, 1);
      assert.equal(shared.health().ok, true);
      await shared.close();
      assert.equal(client.status, 'ready');
    } finally {
      await shared.close();
      client.disconnect();
    }
  });

  it('answers unavailable, never hangs, when no seed node answers', async () => {
    const down = new RedisStreamsHistory({ nodes: [{ host: '127.0.0.1', port: 1 }], publishCommand: 'SPUBLISH' });
    await assert.rejects(down.start(), { name: 'NerveError', code: 'unavailable' });
    assert.equal(down.health().ok, false);
    await down.close();
  });

  it('rejects bad configuration at construction', () => {
    assert.throws(() => new RedisStreamsHistory({ url: 'redis://127.0.0.1:1', nodes: seeds() }), { name: 'ConfigError' });
    assert.throws(() => new RedisStreamsHistory({ nodes: [] }), { name: 'ConfigError' });
    assert.throws(() => new RedisStreamsHistory({ nodes: seeds(), publishCommand: 'XPUBLISH' as never }), { name: 'ConfigError' });
  });
});
