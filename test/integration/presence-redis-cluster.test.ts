/**
 * RedisPresence on a private 3-master Redis Cluster (project issue 3): the
 * Presence conformance suite, expiry across two nodes, and the slot rule
 * (a room's keys share one slot; rooms spread over the masters).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChannelNamer } from '../../src/bus/channels.js';
import { keySlot } from '../../src/redis/key-slot.js';
import type { RoomRef } from '../../src/history/history.js';
import { RedisPresence } from '../../src/presence/redis.js';
import type { PresenceExpiry, PresenceRejoin, RedisPresenceOptions } from '../../src/presence/redis-options.js';
import { presenceConformance } from '../conformance/presence.js';
import { redisServerSkipReason, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await redisServerSkipReason()) ?? false;
let cluster: RedisCluster | undefined;

function presence(options: Partial<RedisPresenceOptions> = {}): RedisPresence {
  if (!cluster) throw new Error('cluster not started');
  return new RedisPresence({ nodes: cluster.nodes, prefix: testNamespace('pc'), heartbeatMs: 0, ...options });
}

describe('RedisPresence on a private 3-master Redis Cluster', { skip }, () => {
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  const namespace = testNamespace('pcc');
  presenceConformance('redis (cluster)', (options) => presence({ prefix: `${namespace}:c`, ...options }));

  it("keeps a room's keys in one slot, the slot of its tagged channel, and spreads rooms over every master", async () => {
    const probe = presence();
    const namer = new ChannelNamer({ env: 'e', service: 's', hashTags: true });
    const masters = new Set<string>();
    for (let i = 0; i < 30; i += 1) {
      const room: RoomRef = { tenant: 'acme', room: `room-${i}` };
      const slots = new Set(['conns', 'users', 'counts', 'states'].map((suffix) => keySlot(probe.key(room, suffix))));
      assert.deepEqual([...slots], [keySlot(namer.room(room.tenant, room.room))]);
      const slot = Number((await cluster!.cli(cluster!.nodes[0]!.port, 'cluster', 'keyslot', probe.key(room, 'conns'))).trim());
      assert.equal(slot, [...slots][0]);
      // redis-cli --cluster create splits the 16384 slots into three ranges.
      masters.add(slot <= 5460 ? 'a' : slot <= 10922 ? 'b' : 'c');
    }
    assert.equal(masters.size, 3);
    await probe.close();
  });

  it("drops a crashed node's members after the TTL and reports their leave once", async () => {
    const prefix = testNamespace('crash');
    const clock = { t: 1_000_000 };
    const expired: PresenceExpiry[] = [];
    const make = (): RedisPresence => presence({ prefix, ttlMs: 30_000, now: () => clock.t, onExpire: (_room, expiry) => expired.push(expiry) });
    const a = make();
    const b = make();
    const room: RoomRef = { tenant: 'acme', room: 'call' };
    try {
      await Promise.all([a.start(), b.start()]);
      await a.add(room, { user: 'alice', conn: 'a1', node: 'a', ts: 10 });
      await b.add(room, { user: 'bob', conn: 'b1', node: 'b', ts: 20 });
      await a.close();
      clock.t += 20_000;
      await b.heartbeat(); // refreshes bob; alice's node no longer does
      clock.t += 10_001;
      assert.deepEqual(await b.members(room), [{ user: 'bob', since: 20 }]);
      assert.deepEqual(expired, [{ users: ['alice'], roomEmpty: false }]);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("sweeps a dead instance's rooms, spread over the masters, from one survivor; its index keys in other slots are cleaned", async () => {
    const prefix = testNamespace('dead');
    const clock = { t: 1_000_000 };
    const reports: Array<Array<{ room: RoomRef; expiry: PresenceExpiry }>> = [[], [], []];
    const make = (i: number): RedisPresence =>
      presence({ prefix, ttlMs: 30_000, instanceId: `n${i}`, now: () => clock.t, onExpire: (room, expiry) => reports[i]!.push({ room, expiry }) });
    const [a, b, c] = [make(0), make(1), make(2)];
    const rooms: RoomRef[] = Array.from({ length: 12 }, (_, i) => ({ tenant: 'acme', room: `lonely-${i}` }));
    const exists = async (key: string): Promise<number> => Number((await cluster!.cli(cluster!.nodes[0]!.port, '-c', 'exists', key)).trim());
    try {
      await Promise.all([a.start(), b.start(), c.start()]);
      await Promise.all(rooms.map((room, i) => a.add(room, { user: `u${i}`, conn: `a${i}`, node: 'a', ts: i })));
      assert.equal(await exists(a.nodeKey('n0', 'rooms')), 1);
      await a.close();
      clock.t += 30_001;
      await Promise.all([b.heartbeat(), c.heartbeat()]);
      const reporters = reports.filter((seen) => seen.length > 0);
      assert.equal(reporters.length, 1, 'one survivor reports');
      assert.deepEqual(reporters[0]!.map((report) => report.room.room).sort(), rooms.map((room) => room.room).sort());
      assert.ok(reporters[0]!.every((report) => report.expiry.roomEmpty));
      for (const room of rooms) assert.equal(await exists(a.key(room, 'conns')), 0);
      assert.equal(await exists(a.nodeKey('n0', 'rooms')), 0);
      assert.equal(await exists(a.nodeKey('n0', 'sweep')), 0);
      assert.equal((await cluster!.cli(cluster!.nodes[0]!.port, '-c', 'zscore', a.registryKey(), 'n0')).trim(), '');
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('a heartbeat racing removes brings nobody back; a stalled instance restores its members and reports the join', async () => {
    const prefix = testNamespace('race');
    const clock = { t: 1_000_000 };
    const expired: Array<{ room: RoomRef; expiry: PresenceExpiry }> = [];
    const rejoined: Array<{ room: RoomRef; rejoin: PresenceRejoin }> = [];
    const make = (id: string): RedisPresence =>
      presence({
        prefix,
        ttlMs: 30_000,
        instanceId: id,
        now: () => clock.t,
        onExpire: (room, expiry) => expired.push({ room, expiry }),
        onRejoin: (room, rejoin) => rejoined.push({ room, rejoin }),
      });
    const [a, b] = [make('a'), make('b')];
    const rooms: RoomRef[] = Array.from({ length: 6 }, (_, i) => ({ tenant: 'acme', room: `race-${i}` }));
    const stalled: RoomRef = { tenant: 'acme', room: 'stalled' };
    try {
      await Promise.all([a.start(), b.start()]);
      await Promise.all(rooms.flatMap((room) => [0, 1, 2].map((i) => a.add(room, { user: `u${i}`, conn: `c${i}`, node: 'a', ts: i }))));
      await a.add(stalled, { user: 'alice', conn: 's1', node: 'a', ts: 5 });
      const beat = a.heartbeat();
      const removed = await Promise.all(rooms.flatMap((room) => [0, 1, 2].map((i) => a.remove(room, { user: `u${i}`, conn: `c${i}` }))));
      await beat;
      assert.equal(removed.filter((result) => result.userLeft).length, rooms.length * 3);
      for (const room of rooms) assert.deepEqual(await b.members(room), []);
      // a stalls longer than the TTL; b sweeps it; a comes back.
      clock.t += 30_001;
      await b.heartbeat();
      assert.deepEqual(expired, [{ room: stalled, expiry: { users: ['alice'], roomEmpty: true } }], 'only the stalled member left');
      await a.heartbeat();
      assert.deepEqual(rejoined, [{ room: stalled, rejoin: { users: ['alice'], roomStarted: true } }]);
      assert.deepEqual(await b.members(stalled), [{ user: 'alice', since: 5 }]);
      for (const room of rooms) assert.deepEqual(await b.members(room), [], 'no removed member came back');
      assert.deepEqual(await a.remove(stalled, { user: 'alice', conn: 's1' }), { userLeft: true, roomEmpty: true, count: 0 });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('answers unavailable when no seed node answers', async () => {
    const down = new RedisPresence({ nodes: [{ host: '127.0.0.1', port: 1 }] });
    await assert.rejects(down.start(), { name: 'NerveError', code: 'unavailable' });
    assert.equal(down.health().ok, false);
    await down.close();
  });
});
