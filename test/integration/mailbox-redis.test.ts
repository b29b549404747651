/**
 * RedisMailbox against the real Redis (NERVE_TEST_REDIS_URL, default
 * redis://127.0.0.1:6379), under a random key prefix deleted afterwards,
 * and on a private 3-master Redis Cluster (sharded mode).
 * Expiry is driven by an injected clock, never by sleeping.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { keySlot } from '../../src/redis/key-slot.js';
import { RedisMailbox, type RedisMailboxOptions } from '../../src/mailbox/redis.js';
import { mailboxConformance } from '../conformance/mailbox.js';
import { redisServerSkipReason, redisSkipReason, SHARED_REDIS_URL, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js';
import { deleteKeys } from '../helpers/redis-keys.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await redisSkipReason()) ?? false;
const namespace = testNamespace('nmb');
const admin = skip ? undefined : new Redis(SHARED_REDIS_URL);

after(async () => {
  admin?.disconnect();
  if (!skip) await deleteKeys(SHARED_REDIS_URL, `${namespace}:*`);
});

mailboxConformance('redis', (options) => new RedisMailbox({ url: SHARED_REDIS_URL, prefix: `${namespace}:c`, ...options }), undefined, { skip });

describe('RedisMailbox', { skip }, () => {
  it('keeps its keys under the user hash tag, with a TTL', async () => {
    const mailbox = new RedisMailbox({ url: SHARED_REDIS_URL, prefix: `${namespace}:k`, ttlMs: 5000 });
    await mailbox.start();
    const user = { tenant: 'acme', user: 'bob@example.org' };
    await mailbox.markSeen(user);
    await mailbox.offer(user, 'x');
    for (const suffix of ['seen', 'box'] as const) {
      const key = mailbox.key(user, suffix);
      assert.match(key, /\{acme:bob%40example\.org\}/);
      const ttl = await admin!.pttl(key);
      assert.ok(ttl > 0 && ttl <= 5000, `${suffix} ttl ${ttl}`);
    }
    assert.deepEqual((await mailbox.take(user)).payloads, ['x']);
    assert.equal(await admin!.exists(mailbox.key(user, 'box')), 0, 'the taken list is deleted');
    await mailbox.close();
  });

  it('takes of one tick share one script call: each caller gets its own mailbox, oldest first, once, and a failure fails them all', async () => {
    const mailbox = new RedisMailbox({ url: SHARED_REDIS_URL, prefix: `${namespace}:b`, ttlMs: 5000 });
    await mailbox.start();
    const users = Array.from({ length: 5 }, (_, i) => ({ tenant: 'acme', user: `u${i}` }));
    for (const user of users) await mailbox.markSeen(user);
    for (const [i, user] of users.entries()) {
      if (i === 2) continue; // one empty mailbox in the batch
      for (let n = 0; n < i + 1; n += 1) await mailbox.offer(user, `${user.user}-${n}`);
    }
    const calls: string[] = [];
    const client = (mailbox as unknown as { client: Redis }).client;
    const evalsha = client.evalsha.bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as { evalsha: (...args: unknown[]) => Promise<unknown> }).evalsha = (...args: unknown[]) => {
      calls.push(`keys=${String(args[1])}`);
      return evalsha(...args);
    };
    // Same tick: every user once, and u0 a second time (it must get nothing the second time).
    const taken = await Promise.all([...users, users[0]!].map((user) => mailbox.take(user)));
    assert.deepEqual(calls, ['keys=6'], 'one script call for the six takes');
    assert.deepEqual(
      taken.map((result) => result.payloads),
      [['u0-0'], ['u1-0', 'u1-1'], [], ['u3-0', 'u3-1', 'u3-2', 'u3-3'], ['u4-0', 'u4-1', 'u4-2', 'u4-3', 'u4-4'], []],
    );
    for (const user of users) assert.equal(await admin!.exists(mailbox.key(user, 'box')), 0, 'every taken list is deleted');
    // A lone take uses the one-key script.
    calls.length = 0;
    assert.deepEqual(await mailbox.take(users[1]!), { payloads: [], expired: 0 });
    assert.deepEqual(calls, ['keys=1']);
    // The store failing fails every take of the batch; a call sent on a ready connection and lost may have emptied
    // the boxes, so it is `outcome_unknown`, not `unavailable` (src/redis/link.ts).
    (client as unknown as { evalsha: (...args: unknown[]) => Promise<unknown> }).evalsha = () => Promise.reject(new Error('connection lost'));
    const failed = await Promise.allSettled(users.slice(0, 3).map((user) => mailbox.take(user)));
    for (const result of failed) {
      assert.equal(result.status, 'rejected');
      assert.equal((result.reason as { code?: unknown }).code, 'outcome_unknown');
    }
    await mailbox.close();
  });

  it('a mailbox that cannot be read fails only its own take: the others of the batch are delivered and emptied', async () => {
    const mailbox = new RedisMailbox({ url: SHARED_REDIS_URL, prefix: `${namespace}:w`, ttlMs: 5000 });
    await mailbox.start();
    const users = Array.from({ length: 3 }, (_, i) => ({ tenant: 'acme', user: `w${i}` }));
    for (const user of users) {
      await mailbox.markSeen(user);
      await mailbox.offer(user, `${user.user}-0`);
    }
    // The middle user's box is not a list: LRANGE answers WRONGTYPE inside the take-many script.
    await admin!.del(mailbox.key(users[1]!, 'box'));
    await admin!.set(mailbox.key(users[1]!, 'box'), 'not a list', 'PX', 5000);
    const taken = await Promise.allSettled(users.map((user) => mailbox.take(user)));
    assert.deepEqual(
      taken.map((result) => (result.status === 'fulfilled' ? result.value.payloads : (result.reason as { code: string }).code)),
      [['w0-0'], 'internal', ['w2-0']],
    );
    assert.equal(await admin!.exists(mailbox.key(users[0]!, 'box')), 0, 'the box before the bad one is emptied');
    assert.equal(await admin!.exists(mailbox.key(users[2]!, 'box')), 0, 'the box after the bad one is emptied');
    await mailbox.close();
  });

  it('close waits for a script call in flight: a NOSCRIPT retry is not cut off by QUIT', async () => {
    const { LuaScript } = await import('../../src/redis/lua-script.js');
    // A script this Redis has never seen, so the call is EVALSHA → NOSCRIPT → EVAL.
    const fresh = new LuaScript('test.fresh', `return '${namespace}-${Math.random()}'`);
    const mailbox = new RedisMailbox({ url: SHARED_REDIS_URL, prefix: `${namespace}:q` });
    await mailbox.start();
    const client = (mailbox as unknown as { client: Redis }).client;
    const call = fresh.run(client, [], []);
    const closed = mailbox.close();
    assert.match(String(await call), new RegExp(`^${namespace}-`));
    await closed;
  });

  it('refuses a configuration with more or fewer than one connection source', () => {
    assert.throws(() => new RedisMailbox({ url: SHARED_REDIS_URL, nodes: [{ host: '127.0.0.1', port: 1 }] }), { name: 'ConfigError' });
    assert.throws(() => new RedisMailbox({}), { name: 'ConfigError' });
  });

  it('fails with unavailable when Redis cannot be reached', async () => {
    const mailbox = new RedisMailbox({ url: 'redis://127.0.0.1:1', prefix: `${namespace}:x` });
    await assert.rejects(mailbox.start(), { name: 'NerveError', code: 'unavailable' });
    await mailbox.close();
  });
});

describe('RedisMailbox on a private 3-master Redis Cluster', { skip: (await redisServerSkipReason()) ?? false }, () => {
  let cluster: RedisCluster | undefined;
  const clusterNamespace = testNamespace('nmbc');
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  function onCluster(options: Partial<RedisMailboxOptions> = {}): RedisMailbox {
    if (!cluster) throw new Error('cluster not started');
    return new RedisMailbox({ nodes: cluster.nodes, prefix: `${clusterNamespace}:c`, ...options });
  }

  mailboxConformance('redis (cluster)', (options) => onCluster(options));

  it("keeps a user's keys in one slot and spreads users over every master", async () => {
    const mailbox = onCluster();
    await mailbox.start();
    const masters = new Set<string>();
    try {
      for (let i = 0; i < 30; i += 1) {
        const user = { tenant: 'acme', user: `user-${i}` };
        const slot = keySlot(mailbox.key(user, 'seen'));
        assert.equal(keySlot(mailbox.key(user, 'box')), slot);
        // redis-cli --cluster create splits the 16384 slots into three ranges.
        masters.add(slot <= 5460 ? 'a' : slot <= 10922 ? 'b' : 'c');
        await mailbox.markSeen(user);
        assert.equal((await mailbox.offer(user, `hi ${i}`)).queued, true);
        assert.deepEqual((await mailbox.take(user)).payloads, [`hi ${i}`]);
      }
      assert.equal(masters.size, 3);
    } finally {
      await mailbox.close();
    }
  });

  it('fails with unavailable when no seed node answers', async () => {
    const mailbox = new RedisMailbox({ nodes: [{ host: '127.0.0.1', port: 1 }] });
    await assert.rejects(mailbox.start(), { name: 'NerveError', code: 'unavailable' });
    assert.equal(mailbox.health().ok, false);
    await mailbox.close();
  });
});

describe('signal mailbox end to end (2 nodes)', { skip }, () => {
  it('a peer who reconnects within the TTL gets pending signals once, in order; others get peer_offline', async () => {
    const { startNode } = await import('../helpers/node-process.js');
    const { RawClient } = await import('../helpers/raw-client.js');
    const env = `${namespace}e`;
    const args = ['--redis-url', SHARED_REDIS_URL, '--env', env, '--mailbox-ttl-ms', '10000'];
    const [a, b] = await Promise.all([startNode({ args }), startNode({ args })]);
    try {
      const bob = await RawClient.connect(a.wsUrl, 'bob');
      bob.close();
      await bob.closed;
      const alice = await RawClient.connect(b.wsUrl, 'alice');
      // The mark is written after bob's socket closes: wait for it, not for a time.
      let first: Record<string, unknown> | undefined;
      for (let i = 0; i < 200 && first?.op !== 'ack'; i += 1) {
        first = await alice.request({ op: 'signal', to: 'bob', kind: 'offer', data: { n: 1 } });
      }
      assert.equal(first?.op, 'ack');
      assert.equal(first?.queued, true);
      const more = await Promise.all([2, 3].map((n) => alice.request({ op: 'signal', to: 'bob', kind: 'candidate', data: { n } })));
      assert.ok(more.every((ack) => ack.op === 'ack' && ack.queued === true));
      const never = await alice.request({ op: 'signal', to: 'carol', kind: 'offer', data: {} });
      assert.deepEqual([never.op, never.code], ['error', 'peer_offline']);

      const back = await RawClient.open(b.wsUrl);
      back.send({ op: 'connect', rid: 'c', v: 1, user: 'bob' });
      await back.waitFor((f) => f.op === 'welcome');
      const signals = await Promise.all([1, 2, 3].map(() => back.waitFor((f) => f.op === 'signal')));
      assert.deepEqual(
        signals.map((s) => (s.data as { n: number }).n),
        [1, 2, 3],
      );
      assert.deepEqual(
        signals.map((s) => s.from),
        ['alice', 'alice', 'alice'],
      );
      // A second connection of bob gets nothing: the mailbox was taken once.
      const again = await RawClient.connect(a.wsUrl, 'bob');
      await again.request({ op: 'ping' });
      await back.request({ op: 'ping' });
      assert.equal(again.frames.filter((f) => f.op === 'signal').length, 0);
      assert.equal(back.frames.filter((f) => f.op === 'signal').length, 0);
      // Connected now: a plain ack, delivered live to both connections.
      const live = await alice.request({ op: 'signal', to: 'bob', kind: 'bye', data: { n: 4 } });
      assert.equal(live.op, 'ack');
      assert.equal(live.queued, undefined);
      await Promise.all([back, again].map((c) => c.waitFor((f) => f.op === 'signal' && (f.data as { n: number }).n === 4)));
      for (const c of [alice, back, again]) c.close();
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      assert.match(metrics, /nerve_mailbox_queued_total\{[^}]*\} 3/);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      const { deleteNamespace } = await import('../helpers/redis-keys.js');
      await deleteNamespace(SHARED_REDIS_URL, env);
    }
  });
});
