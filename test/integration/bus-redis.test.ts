/**
 * RedisBus on the shared Redis: the Bus conformance suite with three buses
 * acting as three nodes, and the subscription-leak check. Everything lives
 * under a random prefix; nothing here flushes or reconfigures the server.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ChannelNamer } from '../../src/bus/channels.js';
import { RedisBus, createRedisBus } from '../../src/bus/redis.js';
import { busConformance } from '../conformance/bus.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await redisSkipReason()) ?? false;

function bus(prefix: string, nodeId: string, extra: Partial<ConstructorParameters<typeof RedisBus>[0]> = {}): RedisBus {
  return new RedisBus({ url: SHARED_REDIS_URL, nodeId, namer: new ChannelNamer({ env: prefix, service: 'nerve' }), canaryIntervalMs: 500, ...extra });
}

busConformance('redis (shared server, 3 nodes)', (count, prefix) => Array.from({ length: count }, (_, i) => bus(prefix, `n${i}`)), { skip });

describe('RedisBus on the shared server', { skip }, () => {
  it('leaks no subscription after 20,000 acquire and release calls (about 10,000 cycles) over many channels', async () => {
    const prefix = testNamespace('leak');
    const node = bus(prefix, 'leaky', { canaryIntervalMs: 0 });
    const admin = new Redis(SHARED_REDIS_URL);
    admin.on('error', () => {});
    try {
      await node.start(() => {});
      const channels = Array.from({ length: 200 }, (_, i) => `${prefix}:default:room:r${i}`);
      const held = new Map<string, number>();
      let seed = 42;
      const random = (n: number): number => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed % n;
      };
      // Concurrent batches of random acquires and releases, as joins and leaves arrive.
      for (let round = 0; round < 200; round += 1) {
        const ops: Array<Promise<void>> = [];
        for (let i = 0; i < 100; i += 1) {
          const channel = channels[random(channels.length)]!;
          const refs = held.get(channel) ?? 0;
          if (refs > 0 && random(2) === 0) {
            held.set(channel, refs - 1);
            ops.push(node.release(channel));
          } else {
            held.set(channel, refs + 1);
            ops.push(node.acquire(channel));
          }
        }
        await Promise.all(ops);
      }
      const expected = [...held.entries()]
        .filter(([, refs]) => refs > 0)
        .map(([channel]) => channel)
        .sort();
      assert.deepEqual(node.channels().sort(), expected);
      const onServer = ((await admin.pubsub('CHANNELS', `${prefix}:default:*`)) as string[]).sort();
      assert.deepEqual(onServer, expected, 'PUBSUB CHANNELS shows exactly the held channels');
      const counts = (await admin.pubsub('NUMSUB', ...channels)) as Array<string | number>;
      for (let i = 0; i < counts.length; i += 2) {
        const channel = String(counts[i]);
        assert.equal(Number(counts[i + 1]), held.get(channel) ? 1 : 0, `NUMSUB ${channel}`);
      }
      // Release everything: nothing of ours stays subscribed except the canary.
      await Promise.all(expected.flatMap((channel) => Array.from({ length: held.get(channel)! }, () => node.release(channel))));
      assert.deepEqual(await admin.pubsub('CHANNELS', `${prefix}:default:*`), []);
    } finally {
      await node.close();
      admin.disconnect();
    }
    const left = await waitFor(
      async () => {
        const probe = new Redis(SHARED_REDIS_URL);
        probe.on('error', () => {});
        try {
          const list = (await probe.pubsub('CHANNELS', `${prefix}*`)) as string[];
          return list.length === 0 ? 'empty' : false;
        } finally {
          probe.disconnect();
        }
      },
      { what: 'no channel of the prefix after close' },
    );
    assert.equal(left, 'empty');
  });

  it('acquires of one turn share one SUBSCRIBE, releases one UNSUBSCRIBE; each acquire resolves only once its channel is live', async () => {
    const prefix = testNamespace('batch');
    const got: string[] = [];
    const node = bus(prefix, 'batcher', { canaryIntervalMs: 0 });
    const other = bus(prefix, 'publisher', { canaryIntervalMs: 0 });
    const admin = new Redis(SHARED_REDIS_URL);
    admin.on('error', () => {});
    try {
      await node.start((channel) => got.push(channel));
      await other.start(() => {});
      const subscriber = (node as unknown as { subscriber: Redis }).subscriber;
      const calls: Array<{ command: string; channels: string[] }> = [];
      const subscribe = subscriber.subscribe.bind(subscriber);
      const unsubscribe = subscriber.unsubscribe.bind(subscriber);
      (subscriber as unknown as { subscribe: (...channels: string[]) => Promise<unknown> }).subscribe = (...channels: string[]) => {
        calls.push({ command: 'subscribe', channels });
        return subscribe(...channels);
      };
      (subscriber as unknown as { unsubscribe: (...channels: string[]) => Promise<unknown> }).unsubscribe = (...channels: string[]) => {
        calls.push({ command: 'unsubscribe', channels });
        return unsubscribe(...channels);
      };
      const channels = Array.from({ length: 40 }, (_, i) => `${prefix}:default:user:u${i}`);
      // Each acquire, as soon as it resolves, is followed by a publish from another node: it must arrive.
      const receivers = await Promise.all(
        channels.map((channel, i) =>
          node.acquire(channel).then(() => other.publish(channel, { v: 1, type: 'deliver', id: `m${i}`, origin: 'publisher', class: 'signal', payload: '{}' })),
        ),
      );
      assert.deepEqual(
        receivers,
        channels.map(() => 1),
        'every channel was live when its acquire resolved',
      );
      assert.deepEqual(calls, [{ command: 'subscribe', channels }], 'one SUBSCRIBE for the whole turn');
      await waitFor(() => got.length === channels.length, { what: 'every envelope' });
      assert.deepEqual([...got].sort(), [...channels].sort());

      calls.length = 0;
      await Promise.all(channels.map((channel) => node.release(channel)));
      assert.deepEqual(calls, [{ command: 'unsubscribe', channels }], 'one UNSUBSCRIBE for the whole turn');
      assert.deepEqual(await admin.pubsub('CHANNELS', `${prefix}:default:*`), []);
      assert.deepEqual(node.channels(), []);
    } finally {
      await node.close();
      await other.close();
      admin.disconnect();
    }
  });

  it('a SUBSCRIBE answered during an event-loop stall longer than the command timeout still succeeds', async () => {
    // A reconnect storm stalls the loop for seconds; the reply then waits in the
    // socket while the timer phase runs first. Only a subscriber timeout above the
    // stall keeps the joins of that batch (and the subscriber connection) alive.
    const prefix = testNamespace('stall');
    const commandTimeoutMs = 200;
    const node = bus(prefix, 'stalled', { canaryIntervalMs: 0, probeIntervalMs: 0, commandTimeoutMs });
    const admin = new Redis(SHARED_REDIS_URL);
    admin.on('error', () => {});
    try {
      await node.start(() => {});
      const subscriber = (node as unknown as { subscriber: Redis }).subscriber;
      const subscribe = subscriber.subscribe.bind(subscriber);
      (subscriber as unknown as { subscribe: (...channels: string[]) => Promise<unknown> }).subscribe = (...channels: string[]) => {
        const sent = subscribe(...channels);
        // The command is on the wire; block the loop past its timeout, as a storm's handshakes do.
        const until = Date.now() + commandTimeoutMs * 3;
        while (Date.now() < until);
        return sent;
      };
      const channel = `${prefix}:default:user:stalled`;
      await node.acquire(channel);
      assert.deepEqual(await admin.pubsub('CHANNELS', channel), [channel]);
      assert.equal(node.linkStats()[0]!.replacements, 0, 'no connection was replaced');
    } finally {
      await node.close();
      admin.disconnect();
    }
  });

  it('publishes of one tick leave in one write, and each resolves with its own receiver count', async () => {
    const prefix = testNamespace('pubtick');
    const listener = bus(prefix, 'listener', { canaryIntervalMs: 0 });
    const node = bus(prefix, 'publisher', { canaryIntervalMs: 0 });
    try {
      const got: string[] = [];
      await listener.start((_channel, envelope) => got.push(envelope.id));
      await node.start(() => {});
      const heard = `${prefix}:default:room:heard`;
      await listener.acquire(heard);
      const stream = (node as unknown as { publisher: Redis }).publisher.stream as unknown as { _write: unknown; _writev: unknown };
      let writes = 0;
      for (const method of ['_write', '_writev'] as const) {
        const original = stream[method] as (...args: unknown[]) => unknown;
        stream[method] = function (this: unknown, ...args: unknown[]) {
          writes += 1;
          return original.apply(this, args);
        };
      }
      const counts = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          node.publish(i % 2 === 0 ? heard : `${prefix}:default:room:nobody`, {
            v: 1,
            type: 'deliver',
            id: `m${i}`,
            origin: 'publisher',
            class: 'ephemeral',
            payload: '{}',
          }),
        ),
      );
      assert.equal(writes, 1, 'twenty PUBLISHes, one write to the socket');
      assert.deepEqual(
        counts,
        Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 1 : 0)),
      );
      await waitFor(() => got.length === 10, { what: 'the ten heard envelopes' });
      assert.deepEqual(
        got,
        Array.from({ length: 10 }, (_, i) => `m${2 * i}`),
        'in publish order',
      );
    } finally {
      await node.close();
      await listener.close();
    }
  });

  it('a batched SUBSCRIBE that cannot be sent fails every acquire of the batch with bus_unavailable, and takes no reference', async () => {
    const prefix = testNamespace('batchfail');
    const node = bus(prefix, 'failing', { canaryIntervalMs: 0 });
    try {
      await node.start(() => {});
      const subscriber = (node as unknown as { subscriber: Redis }).subscriber;
      const channels = [`${prefix}:default:user:a`, `${prefix}:default:user:b`, `${prefix}:default:user:c`];
      const acquires = channels.map((channel) => node.acquire(channel));
      // Before the batch leaves (setImmediate): the subscriber goes away (and reconnects).
      subscriber.disconnect(true);
      const results = await Promise.allSettled(acquires);
      for (const result of results) {
        assert.equal(result.status, 'rejected');
        assert.equal((result.reason as { code?: unknown }).code, 'bus_unavailable');
      }
      assert.deepEqual(node.channels(), []);
      // Once back, the same channels can be acquired.
      await waitFor(() => node.stats().reconnects >= 1 && subscriber.status === 'ready', { timeoutMs: 10_000, what: 'subscriber back' });
      await Promise.all(channels.map((channel) => node.acquire(channel)));
      assert.deepEqual(node.channels().sort(), [...channels].sort());
    } finally {
      await node.close();
    }
  });

  it('counts published and received envelopes and drops garbage as decode errors', async () => {
    const prefix = testNamespace('stats');
    // A pino logger is accepted as is.
    const a = createRedisBus({
      url: SHARED_REDIS_URL,
      nodeId: 'a',
      namer: new ChannelNamer({ env: prefix, service: 'nerve' }),
      logger: pino({ level: 'silent' }),
    });
    const raw = new Redis(SHARED_REDIS_URL);
    raw.on('error', () => {});
    const got: string[] = [];
    try {
      await a.start((_channel, envelope) => got.push(envelope.id));
      const channel = `${prefix}:default:room:x`;
      await a.acquire(channel);
      assert.equal(await raw.publish(channel, 'not an envelope'), 1);
      assert.equal(await raw.publish(channel, Buffer.from([1, 0, 0, 0xff])), 1);
      await a.publish(channel, { v: 1, type: 'deliver', id: 'ok', origin: 'a', class: 'chat', payload: 'x' });
      await waitFor(() => got.includes('ok'), { what: 'the valid envelope' });
      assert.deepEqual(got, ['ok']);
      const stats = a.stats();
      assert.equal(stats.decodeErrors, 2);
      assert.equal(stats.published, 1);
      assert.equal(stats.received, 1);
      assert.equal(a.health().ok, true);
    } finally {
      await a.close();
      raw.disconnect();
    }
  });

  it('rejects bad options at construction with a precise message', () => {
    const namer = new ChannelNamer({ env: 'x', service: 'y' });
    assert.throws(() => new RedisBus({ nodeId: 'a', namer }), /url is required/);
    assert.throws(() => new RedisBus({ url: 'http://x', nodeId: 'a', namer }), /redis:\/\//);
    assert.throws(() => new RedisBus({ url: SHARED_REDIS_URL, nodeId: 'a', namer, commandTimeoutMs: 0 }), /commandTimeoutMs/);
    assert.throws(() => new RedisBus({ url: SHARED_REDIS_URL, nodeId: 'a', namer, canaryIntervalMs: -1 }), /canaryIntervalMs/);
  });

  it('start rejects with bus_unavailable when Redis is unreachable', async () => {
    const node = new RedisBus({ url: 'redis://127.0.0.1:1', nodeId: 'a', namer: new ChannelNamer({ env: 'x', service: 'y' }), startTimeoutMs: 300 });
    await assert.rejects(
      node.start(() => {}),
      { name: 'NerveError', code: 'bus_unavailable' },
    );
    await node.close();
    assert.equal(node.health().ok, false);
  });
});
