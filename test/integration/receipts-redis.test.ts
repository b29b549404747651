/**
 * RedisReadPositions against the real Redis (NERVE_TEST_REDIS_URL, default
 * redis://127.0.0.1:6379), under a random key prefix deleted afterwards.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisReadPositions } from '../../src/receipts/redis.js';
import { receiptsConformance } from '../conformance/receipts.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { deleteKeys } from '../helpers/redis-keys.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await redisSkipReason()) ?? false;
const namespace = testNamespace('nrp');
const admin = skip ? undefined : new Redis(SHARED_REDIS_URL);

after(async () => {
  admin?.disconnect();
  if (!skip) await deleteKeys(SHARED_REDIS_URL, `${namespace}:*`);
});

receiptsConformance('redis', () => new RedisReadPositions({ url: SHARED_REDIS_URL, prefix: `${namespace}:c` }), { skip });

describe('RedisReadPositions', { skip }, () => {
  it("keeps one hash per room under the room's hash tag, with an expiry", async () => {
    const store = new RedisReadPositions({ url: SHARED_REDIS_URL, prefix: `${namespace}:k`, ttlMs: 60_000 });
    await store.open();
    const room = { tenant: 'acme', room: 'stand.up' };
    try {
      const key = store.key(room);
      assert.equal(key, `${namespace}:k:acme:room:{acme:stand.up}:reads`);
      await store.advance(room, 'bob@example.org', { offset: 3, epoch: 'e' });
      assert.equal(await admin!.hget(key, 'bob@example.org'), '3|e');
      const ttl = await admin!.pttl(key);
      assert.ok(ttl > 0 && ttl <= 60_000, `ttl ${ttl}`);
    } finally {
      await store.close();
    }
  });

  it('refuses a bad configuration at construction', () => {
    assert.throws(() => new RedisReadPositions({}), { name: 'ConfigError' });
    assert.throws(() => new RedisReadPositions({ url: SHARED_REDIS_URL, prefix: 'a{b}' }), { name: 'ConfigError' });
    assert.throws(() => new RedisReadPositions({ url: SHARED_REDIS_URL, ttlMs: 10 }), { name: 'ConfigError' });
  });
});
