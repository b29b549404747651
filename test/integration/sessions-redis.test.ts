/**
 * RedisRoomSessions against the real Redis (NERVE_TEST_REDIS_URL, default
 * redis://127.0.0.1:6379), under a random key prefix deleted afterwards,
 * and on a private 3-master Redis Cluster. Time comes from injected clocks.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ChannelNamer } from '../../src/bus/channels.js';
import { keySlot } from '../../src/redis/key-slot.js';
import { RedisRoomSessions, type RedisRoomSessionsOptions } from '../../src/sessions/redis.js';
import { sessionsConformance } from '../conformance/sessions.js';
import { redisServerSkipReason, redisSkipReason, SHARED_REDIS_URL, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js';
import { deleteKeys } from '../helpers/redis-keys.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await redisSkipReason()) ?? false;
const namespace = testNamespace('nrs');
const admin = skip ? undefined : new Redis(SHARED_REDIS_URL);

after(async () => {
  admin?.disconnect();
  if (!skip) await deleteKeys(SHARED_REDIS_URL, `${namespace}:*`);
});

sessionsConformance('redis', (options) => new RedisRoomSessions({ url: SHARED_REDIS_URL, prefix: `${namespace}:c`, ...options }), undefined, { skip });

describe('RedisRoomSessions', { skip }, () => {
  it("keeps one hash under the room's hash tag, with an expiry, and deletes it at the end", async () => {
    const sessions = new RedisRoomSessions({ url: SHARED_REDIS_URL, prefix: `${namespace}:k`, ttlMs: 60_000 });
    await sessions.open();
    const room = { tenant: 'acme', room: 'stand.up' };
    try {
      const key = sessions.key(room);
      assert.equal(key, `${namespace}:k:acme:room:{acme:stand.up}:session`);
      await sessions.start(room, 1000);
      await sessions.joined(room, 'bob@example.org', 1000);
      assert.equal(await admin!.type(key), 'hash');
      const ttl = await admin!.pttl(key);
      assert.ok(ttl > 0 && ttl <= 60_000, `ttl ${ttl}`);
      assert.equal((await sessions.end(room, 2000)).participants[0]?.user, 'bob@example.org');
      assert.equal(await admin!.exists(key), 0, 'deleted at the end');
    } finally {
      await sessions.close();
    }
  });

  it('refuses a bad configuration at construction', () => {
    assert.throws(() => new RedisRoomSessions({ url: SHARED_REDIS_URL, nodes: [{ host: '127.0.0.1', port: 1 }] }), { name: 'ConfigError' });
    assert.throws(() => new RedisRoomSessions({}), { name: 'ConfigError' });
    assert.throws(() => new RedisRoomSessions({ url: SHARED_REDIS_URL, prefix: 'a{b}' }), { name: 'ConfigError' });
    assert.throws(() => new RedisRoomSessions({ url: SHARED_REDIS_URL, ttlMs: 10 }), { name: 'ConfigError' });
  });

  it('fails with unavailable when Redis cannot be reached', async () => {
    const sessions = new RedisRoomSessions({ url: 'redis://127.0.0.1:1', prefix: `${namespace}:x` });
    await assert.rejects(sessions.open(), { name: 'NerveError', code: 'unavailable' });
    assert.equal(sessions.health().ok, false);
    await sessions.close();
  });
});

describe('RedisRoomSessions on a private 3-master Redis Cluster', { skip: (await redisServerSkipReason()) ?? false }, () => {
  let cluster: RedisCluster | undefined;
  const clusterNamespace = testNamespace('nrsc');
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  function onCluster(options: Partial<RedisRoomSessionsOptions> = {}): RedisRoomSessions {
    if (!cluster) throw new Error('cluster not started');
    return new RedisRoomSessions({ nodes: cluster.nodes, prefix: `${clusterNamespace}:c`, ...options });
  }

  sessionsConformance('redis (cluster)', (options) => onCluster(options));

  it("keeps a room's session in the slot of its tagged channel and spreads rooms over every master", async () => {
    const sessions = onCluster();
    await sessions.open();
    const namer = new ChannelNamer({ env: 'e', service: 's', hashTags: true });
    const masters = new Set<string>();
    try {
      for (let i = 0; i < 30; i += 1) {
        const room = { tenant: 'acme', room: `room-${i}` };
        const slot = keySlot(sessions.key(room));
        assert.equal(slot, keySlot(namer.room(room.tenant, room.room)));
        // redis-cli --cluster create splits the 16384 slots into three ranges.
        masters.add(slot <= 5460 ? 'a' : slot <= 10922 ? 'b' : 'c');
        const id = await sessions.start(room, 1000);
        await sessions.joined(room, 'u', 1000);
        assert.equal((await sessions.end(room, 1500)).id, id);
      }
      assert.equal(masters.size, 3);
    } finally {
      await sessions.close();
    }
  });
});
