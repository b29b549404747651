/**
 * Redis history bounds per room-name prefix: the longest matching prefix
 * sets MAXLEN and the idle TTL; other rooms keep the defaults.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { MemoryBus } from '../../src/bus/memory.js';
import { RedisStreamsHistory } from '../../src/history/redis-streams.js';
import type { RoomRef } from '../../src/history/history.js';
import { normalizeOptions } from '../../src/config/normalize.js';
import { ConfigError } from '../../src/config/errors.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';

const REDIS_URL = SHARED_REDIS_URL;
const skip = await redisSkipReason();

describe('history policies per room prefix', { skip }, () => {
  const prefix = `${testNamespace('hp')}:nerve`;
  let history: RedisStreamsHistory;
  let redis: Redis;
  const bus = new MemoryBus();

  before(async () => {
    redis = new Redis(REDIS_URL);
    await bus.start(() => {});
    history = new RedisStreamsHistory({
      url: REDIS_URL,
      prefix,
      maxMessages: 50,
      ttlMs: 3_600_000,
      approximateTrim: false,
      policies: [
        { prefix: 'support-', maxMessages: 5, ttlMs: 60_000 },
        { prefix: 'support-vip-', maxMessages: 8 },
      ],
    });
    await history.start();
  });

  after(async () => {
    await history.close();
    await bus.close();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.unlink(...keys);
    await redis.quit();
  });

  const fill = async (room: RoomRef, count: number) => {
    for (let i = 0; i < count; i++) {
      await history.append(
        room,
        { op: 'message', class: 'chat', room: room.room, id: `${room.room}-${i}`, from: 'u', ts: i, data: i },
        {
          channel: `${prefix}:chan:${room.room}`,
          envelope: (message) => ({ v: 1, type: 'deliver', id: message.id, origin: 'n', class: 'chat', payload: JSON.stringify(message) }),
        },
      );
    }
  };

  it('applies the longest matching prefix and the defaults elsewhere', async () => {
    const support = { tenant: 't', room: 'support-1' };
    const vip = { tenant: 't', room: 'support-vip-1' };
    const other = { tenant: 't', room: 'lobby' };
    await fill(support, 12);
    await fill(vip, 12);
    await fill(other, 12);
    assert.equal(await redis.xlen(history.key(support, 'stream')), 5);
    assert.equal(await redis.xlen(history.key(vip, 'stream')), 8);
    assert.equal(await redis.xlen(history.key(other, 'stream')), 12);
    const supportTtl = await redis.pttl(history.key(support, 'stream'));
    const vipTtl = await redis.pttl(history.key(vip, 'stream'));
    assert.ok(supportTtl > 0 && supportTtl <= 60_000, `support ttl ${supportTtl}`);
    assert.ok(vipTtl > 60_000 && vipTtl <= 3_600_000, `vip ttl ${vipTtl} (the default, since its policy sets none)`);
    assert.deepEqual(history.policyFor(vip), { maxMessages: 8, ttlMs: 3_600_000 });
    const recent = await history.recent(support, 100);
    assert.deepEqual(
      recent.messages.map((m) => m.offset),
      [8, 9, 10, 11, 12],
    );
  });

  it('rejects malformed policies at start-up with one line naming the setting', () => {
    for (const bad of [{}, [{ prefix: 'a:b' }], [{ prefix: 'x', maxMessages: -1 }], [{ prefix: 'x', ttlMs: 5 }]]) {
      assert.throws(
        () => normalizeOptions({ historyPolicies: bad as never }),
        (error: unknown) => error instanceof ConfigError && error.setting === 'historyPolicies',
      );
    }
  });
});
