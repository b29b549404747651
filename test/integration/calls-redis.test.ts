/**
 * RedisCallStore against the real Redis (NERVE_TEST_REDIS_URL, default
 * redis://127.0.0.1:6379), each test under its own key prefix, all deleted
 * afterwards. Time comes from the `now` arguments.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { CallStore } from '../../src/calls/calls.js';
import { RedisCallStore } from '../../src/calls/redis.js';
import { callsConformance } from '../conformance/calls.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { deleteKeys } from '../helpers/redis-keys.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await redisSkipReason()) ?? false;
const namespace = testNamespace('ncl');
const admin = skip ? undefined : new Redis(SHARED_REDIS_URL);

after(async () => {
  admin?.disconnect();
  if (!skip) await deleteKeys(SHARED_REDIS_URL, `${namespace}:*`);
});

// Each test its own prefix, so one test's sweep never meets another's calls; a peer shares its store's.
const prefixes = new WeakMap<CallStore, string>();
let stores = 0;
callsConformance(
  'redis',
  (ttlMs, peer) => {
    const prefix = (peer && prefixes.get(peer)) ?? `${namespace}:${++stores}`;
    const store = new RedisCallStore({ url: SHARED_REDIS_URL, prefix, ttlMs });
    prefixes.set(store, prefix);
    return store;
  },
  { skip },
);

describe('RedisCallStore', { skip }, () => {
  it("keeps one record under the room's hash tag and lists the call until a sweep finds it gone", async () => {
    const store = new RedisCallStore({ url: SHARED_REDIS_URL, prefix: `${namespace}:k`, ttlMs: 1000 });
    await store.open();
    const ref = { tenant: 'acme', room: 'stand.up', call: 'main' };
    try {
      const key = store.key(ref);
      assert.equal(key, `${namespace}:k:acme:room:{acme:stand.up}:call:main`);
      await store.join(ref, { user: 'bob@example.org', conn: 'c1' }, 1000);
      assert.equal(await admin!.type(key), 'string');
      assert.ok((await admin!.pttl(key)) > 0, 'the record expires');
      assert.equal(await admin!.zscore(store.indexKey(), JSON.stringify(['acme', 'stand.up', 'main'])), '2000');
      assert.equal((await store.leave(ref, 'c1', 1500)).ended?.participants[0]?.user, 'bob@example.org');
      assert.equal(await admin!.exists(key), 0, 'deleted at the end');
      assert.deepEqual(await store.sweep(2000), []);
      assert.equal(await admin!.zcard(store.indexKey()), 0, 'unlisted by the sweep');
    } finally {
      await store.close();
    }
  });

  it('refuses a bad configuration at construction', () => {
    assert.throws(() => new RedisCallStore({}), { name: 'ConfigError' });
    assert.throws(() => new RedisCallStore({ url: SHARED_REDIS_URL, prefix: 'a{b}' }), { name: 'ConfigError' });
    assert.throws(() => new RedisCallStore({ url: SHARED_REDIS_URL, ttlMs: 10 }), { name: 'ConfigError' });
  });
});
