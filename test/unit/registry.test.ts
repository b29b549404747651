/**
 * Issue 8: the node registry (memory; Redis when the shared server answers)
 * and the drain schedule.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drainSchedule } from '../../src/gateway/drain-plan.js';
import { MemoryNodeRegistry } from '../../src/registry/memory.js';
import { RedisNodeRegistry } from '../../src/registry/redis.js';
import type { NodeEntry, NodeRegistry } from '../../src/registry/registry.js';
import { deleteNamespaceKeys } from '../helpers/cluster.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const entry = (id: string, ttlMs: number): NodeEntry => ({
  id,
  address: `http://127.0.0.1:${id.length}`,
  version: '0.0.0',
  startedAt: 1,
  state: 'running',
  connections: 3,
  rooms: 1,
  counters: { messagesIn: { chat: 2 }, deliveries: { chat: 4 }, eventsPublished: 1, drops: 0, errors: 0 },
  lanes: [{ lane: 'bus', driver: 'test', ok: true }],
  errors: [],
  ttlMs,
});

async function conformance(registry: NodeRegistry): Promise<void> {
  await registry.announce(entry('b', 60_000));
  await registry.announce(entry('a', 60_000));
  await registry.announce({ ...entry('a', 60_000), state: 'draining', connections: 1 });
  const listed = await registry.list();
  assert.deepEqual(
    listed.map((n) => n.id),
    ['a', 'b'],
  );
  assert.equal(listed[0]?.state, 'draining');
  assert.equal(listed[0]?.connections, 1);
  assert.deepEqual(listed[1]?.counters, entry('b', 0).counters);
  assert.ok((listed[0]?.heartbeatAgeMs ?? -1) >= 0);
  await registry.remove('b');
  assert.deepEqual(
    (await registry.list()).map((n) => n.id),
    ['a'],
  );
  // An entry that is not refreshed expires.
  await registry.announce(entry('short', 150));
  await waitFor(async () => !(await registry.list()).some((n) => n.id === 'short'), { timeoutMs: 3000, what: 'the entry to expire' });
  assert.deepEqual(
    (await registry.list()).map((n) => n.id),
    ['a'],
  );
}

test('memory registry', async () => {
  await conformance(new MemoryNodeRegistry());
});

const redisSkip = (await redisSkipReason(SHARED_REDIS_URL)) ?? false;
test('redis registry', { skip: redisSkip }, async () => {
  const env = testNamespace('reg');
  const registry = new RedisNodeRegistry({ url: SHARED_REDIS_URL, prefix: `${env}:nerve` });
  try {
    await conformance(registry);
  } finally {
    await registry.close();
    await registry.close(); // idempotent
    await deleteNamespaceKeys(SHARED_REDIS_URL, env);
  }
});

test('drain schedule spreads closes over the window, capped by the shutdown timeout', () => {
  assert.deepEqual(drainSchedule(0, 10_000, 10_000), []);
  assert.deepEqual(drainSchedule(5, 0, 10_000), [{ atMs: 0, count: 5 }]);
  assert.deepEqual(drainSchedule(1, 10_000, 10_000), [{ atMs: 0, count: 1 }]);
  // 4 connections over 3 s: one per second, the last at the window's end.
  assert.deepEqual(
    drainSchedule(4, 3000, 10_000),
    [0, 1000, 2000, 3000].map((atMs) => ({ atMs, count: 1 })),
  );
  // The window is capped so the last batch has a second before the timeout.
  const capped = drainSchedule(3, 10_000, 3000);
  assert.equal(capped.at(-1)?.atMs, 2000);
  // Many connections: batches at least 100 ms apart, every connection in exactly one batch, sizes within one.
  const big = drainSchedule(10_000, 10_000, 20_000);
  assert.equal(
    big.reduce((sum, b) => sum + b.count, 0),
    10_000,
  );
  assert.equal(big.length, 101);
  const sizes = big.map((b) => b.count);
  assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
  for (let i = 1; i < big.length; i++) assert.ok(big[i]!.atMs - big[i - 1]!.atMs >= 100);
});
