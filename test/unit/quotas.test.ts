import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { MemoryQuotaBackend, type QuotaBackend } from '../../src/quotas/backend.js';
import { QuotaEnforcer } from '../../src/quotas/enforcer.js';
import { InvalidQuotaError, parseQuotaFile, parseTenantQuota, type TenantQuota } from '../../src/quotas/quotas.js';
import { MemoryTenantQuotas } from '../../src/quotas/store.js';
import type { Cluster, Redis } from 'ioredis';
import { LiveUsage } from '../../src/usage/live.js';
import { UsageMeter, usageEventId } from '../../src/usage/meter.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';

/** A backend clock fixed just after a second starts: every lease falls in one window. */
const FIXED = () => 1_000_001;

function enforcer(quotas: Map<string, TenantQuota>, backend: QuotaBackend = new MemoryQuotaBackend(3000, FIXED)) {
  const refused: string[] = [];
  const errors: unknown[] = [];
  const store = new MemoryTenantQuotas(quotas);
  const e = new QuotaEnforcer({
    quotas: store,
    backend,
    refreshMs: 1000,
    storedTtlMs: 60_000,
    onRefused: (tenant, quota) => refused.push(`${tenant}:${quota}`),
    onBackendError: (error) => errors.push(error),
  });
  return { e, refused, errors, store };
}

async function outcome(call: () => Promise<void> | undefined): Promise<string> {
  try {
    await call();
    return 'ok';
  } catch (error) {
    assert.ok(isNerveError(error), String(error));
    assert.equal(error.code, 'quota_exceeded');
    return error.quota ?? '?';
  }
}

describe('quota documents', () => {
  it('accept known integer fields and refuse anything else, naming the field', () => {
    assert.deepEqual(parseTenantQuota({ connections: 3, publishesPerSecond: 0, rooms: null }), { connections: 3, publishesPerSecond: 0 });
    for (const bad of [{ conections: 1 }, { rooms: -1 }, { rooms: 1.5 }, { storedBytes: '10' }, [], null]) {
      assert.throws(() => parseTenantQuota(bad), InvalidQuotaError);
    }
    assert.throws(
      () => parseTenantQuota({ signalsPerSecond: -2 }),
      (error: unknown) => error instanceof InvalidQuotaError && error.field === 'signalsPerSecond',
    );
    const file = parseQuotaFile({ acme: { rooms: 2 }, '*': { connections: 10 } });
    assert.deepEqual([...file.keys()], ['acme', '*']);
    assert.throws(() => parseQuotaFile({ 'bad tenant': {} }), InvalidQuotaError);
  });

  it("API-set quotas win over the file, and the file's * applies to tenants with none", async () => {
    const store = new MemoryTenantQuotas(parseQuotaFile({ acme: { rooms: 2 }, '*': { connections: 10 } }));
    assert.deepEqual(store.effective('acme'), { rooms: 2 });
    assert.deepEqual(store.effective('other'), { connections: 10 });
    await store.set('acme', { rooms: 5 });
    assert.deepEqual(store.effective('acme'), { rooms: 5 });
    assert.equal((await store.get('acme'))?.source, 'api');
    assert.equal(await store.remove('acme'), true);
    assert.equal((await store.get('acme'))?.source, 'file');
    assert.deepEqual(
      (await store.list()).map((entry) => entry.tenant),
      ['*', 'acme'],
    );
  });
});

describe('QuotaEnforcer', () => {
  it('admits N publishes of a second and refuses the next with the quota named; other tenants are untouched', async () => {
    const { e, refused } = enforcer(new Map([['acme', { publishesPerSecond: 10 }]]));
    const results = [];
    for (let i = 0; i < 12; i += 1) results.push(await outcome(() => e.publish('acme', 0)));
    assert.deepEqual(results, [...Array<string>(10).fill('ok'), 'publishes', 'publishes']);
    assert.deepEqual(refused, ['acme:publishes', 'acme:publishes']);
    for (let i = 0; i < 50; i += 1) assert.equal(e.publish('free', 0), undefined, 'no quota: admitted without waiting');
  });

  it('serves concurrent requests that share one lease (one token per lease)', async () => {
    const { e } = enforcer(new Map([['acme', { signalsPerSecond: 20 }]]));
    e.maxLease = 1;
    const results = await Promise.all(Array.from({ length: 25 }, () => outcome(() => e.signal('acme'))));
    assert.equal(results.filter((r) => r === 'ok').length, 20);
    assert.equal(results.filter((r) => r === 'signals').length, 5);
  });

  it('caps connections, and a closed connection frees its place', async () => {
    const { e } = enforcer(new Map([['acme', { connections: 2 }]]));
    assert.equal(await outcome(() => e.connect('acme')), 'ok');
    assert.equal(await outcome(() => e.connect('acme')), 'ok');
    assert.equal(await outcome(() => e.connect('acme')), 'connections');
    e.disconnected('acme');
    assert.equal(await outcome(() => e.connect('acme')), 'ok');
  });

  it('caps rooms (a room already live counts once) and stored bytes', async () => {
    const { e } = enforcer(new Map([['acme', { rooms: 1, storedBytes: 100 }]]));
    assert.equal(await outcome(() => e.joinRoom('acme', 'a')), 'ok');
    assert.equal(await outcome(() => e.joinRoom('acme', 'a')), 'ok');
    assert.equal(await outcome(() => e.joinRoom('acme', 'b')), 'rooms');
    assert.equal(await outcome(() => e.publish('acme', 60)), 'ok');
    e.stored('acme', 60);
    // The total comes back from the backend asynchronously.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await outcome(() => e.publish('acme', 60)), 'stored_bytes');
    assert.equal(await outcome(() => e.publish('acme', 40)), 'ok');
  });

  it('fails open when the backend fails, and reports it', async () => {
    const failing = new MemoryQuotaBackend(3000, FIXED);
    failing.lease = () => Promise.reject(new Error('redis down'));
    failing.admitConnection = () => Promise.reject(new Error('redis down'));
    const { e, errors } = enforcer(new Map([['acme', { publishesPerSecond: 1, connections: 0 }]]), failing);
    assert.equal(await outcome(() => e.publish('acme', 0)), 'ok');
    assert.equal(await outcome(() => e.connect('acme')), 'ok');
    assert.equal(errors.length, 2);
  });
});

describe('UsageMeter', () => {
  function meter(now: { t: number }, published: LifecycleEvent[], nodeId = 'n1') {
    return new UsageMeter({ nodeId, intervalMs: 60_000, now: () => now.t, events: { publish: async (event) => void published.push(event) } });
  }

  it("reports each tenant once per interval under its incarnation's id, and the interval so far on stop", async () => {
    const now = { t: 120_000 };
    const published: LifecycleEvent[] = [];
    const m = meter(now, published);
    m.connected('acme');
    now.t = 150_000;
    m.message('acme');
    m.delivered('acme', 3);
    m.signal('acme');
    m.stored('acme', 42);
    now.t = 170_000;
    assert.equal(m.snapshot().tenants[0]?.connectionMs, 50_000);
    await m.stop();
    assert.equal(published.length, 1);
    const event = published[0]!;
    assert.equal(event.type, 'usage.reported');
    assert.equal(event.id, usageEventId('n1', m.incarnation, 'acme', 120_000));
    assert.deepEqual(event.data, { from: 120_000, to: 170_000, connectionMs: 50_000, messages: 1, deliveries: 3, signals: 1, storedBytes: 42 });
    // A successor process of the same node in the same interval reports its own part under another id (the worker adds both).
    const again: LifecycleEvent[] = [];
    const successor = meter(now, again);
    assert.notEqual(successor.incarnation, m.incarnation);
    successor.message('acme');
    await successor.stop();
    assert.equal(again[0]?.id, usageEventId('n1', successor.incarnation, 'acme', 120_000));
    assert.notEqual(again[0]?.id, event.id);
    assert.equal((again[0]?.data as { from: number; messages: number }).from, 120_000);
    assert.equal((again[0]?.data as { messages: number }).messages, 1);
    assert.notEqual(usageEventId('n2', m.incarnation, 'acme', 120_000), event.id);
    assert.notEqual(usageEventId('n1', m.incarnation, 'acme', 180_000), event.id);
  });

  it('reports nothing for a tenant that used nothing', async () => {
    const published: LifecycleEvent[] = [];
    const m = meter({ t: 0 }, published);
    m.connected('acme');
    m.disconnected('acme');
    await m.stop();
    assert.equal(published.length, 0);
  });
});

describe('LiveUsage', () => {
  function setup(entries: Record<string, string> | Error) {
    const now = { t: 130_000 };
    const m = new UsageMeter({ nodeId: 'n1', intervalMs: 60_000, now: () => now.t, events: { publish: async () => {} } });
    m.message('acme');
    m.signal('acme');
    const deleted: string[] = [];
    // Only what LiveUsage.read calls of a Redis client.
    const client = {
      status: 'ready',
      hgetall: async () => {
        if (entries instanceof Error) throw entries;
        return entries;
      },
      hdel: async (_key: string, ...fields: string[]) => deleted.push(...fields),
    } as unknown as Redis | Cluster;
    return { meter: m, now, deleted, client };
  }
  const entry = (from: number, at: number, messages: number) =>
    JSON.stringify({ from, at, connections: 1, connectionMs: 1000, messages, deliveries: 0, signals: 0, storedBytes: 0 });

  it("without Redis answers this node's counts", async () => {
    const { meter: m } = setup({});
    const answer = await new LiveUsage({ meter: m, nodeId: 'n1', prefix: 'p', publishMs: 2000 }).read('acme');
    assert.deepEqual(answer.nodes, ['n1']);
    assert.equal(answer.partial, false);
    assert.equal(answer.messages, 1);
    assert.equal(answer.signals, 1);
  });

  it("adds other nodes' fresh entries of the same interval only, and removes stale ones", async () => {
    const {
      meter: m,
      client,
      deleted,
      now,
    } = setup({
      n1: entry(120_000, 129_000, 50), // its own stored entry: the live counts are used instead
      n2: entry(120_000, 129_000, 2),
      n3: entry(120_000, 100_000, 7), // older than 3 writes: a dead node
      n4: entry(60_000, 125_000, 9), // the previous interval
      n5: 'not json',
    });
    const answer = await new LiveUsage({ meter: m, nodeId: 'n1', prefix: 'p', client, publishMs: 2000, now: () => now.t }).read('acme');
    assert.deepEqual(answer.nodes, ['n1', 'n2']);
    assert.equal(answer.messages, 3);
    assert.equal(answer.connections, 1);
    assert.deepEqual(deleted.sort(), ['n3', 'n5']);
  });

  it('says partial when Redis cannot be read', async () => {
    const { meter: m, client } = setup(new Error('down'));
    const errors: unknown[] = [];
    const answer = await new LiveUsage({ meter: m, nodeId: 'n1', prefix: 'p', client, publishMs: 2000, onError: (e) => errors.push(e) }).read('acme');
    assert.equal(answer.partial, true);
    assert.deepEqual(answer.nodes, ['n1']);
    assert.equal(answer.messages, 1);
    assert.equal(errors.length, 1);
  });
});
