/**
 * RedisStreamsHistory against the real Redis (REDIS_URL, default
 * redis://127.0.0.1:6379), under a random key prefix deleted afterwards.
 * Publishes are observed through a minimal bus that decodes the Redis bus
 * wire format, which is what the history script publishes.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RefCountedBus } from '../../src/bus/base.js';
import type { BusEnvelope } from '../../src/bus/bus.js';
import { decodeEnvelope, encodeEnvelope } from '../../src/bus/envelope.js';
import type { AppendTarget, ChatDraft, RoomRef } from '../../src/history/history.js';
import { RedisStreamsHistory } from '../../src/history/redis-streams.js';
import type { LaneHealth } from '../../src/lanes.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';
import { historyConformance } from '../conformance/history.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

async function redisAvailable(): Promise<string | false> {
  const probe = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.ping();
    return false;
  } catch (error) {
    const reason = `Redis not reachable at ${REDIS_URL}: ${error instanceof Error ? error.message : String(error)}`;
    if (process.env.CI === 'true') throw new Error(reason, { cause: error });
    return reason;
  } finally {
    probe.disconnect();
  }
}

const skip = await redisAvailable();
const namespace = testNamespace('nh');
const admin = skip ? undefined : new Redis(REDIS_URL);

/** A bus that hears what the history script PUBLISHes, decoded with the Redis bus codec. */
class ObserverBus extends RefCountedBus {
  readonly driver = 'redis-observer';
  private readonly subscriber = new Redis(REDIS_URL, { lazyConnect: true });
  private readonly publisher = new Redis(REDIS_URL, { lazyConnect: true });

  protected async open(): Promise<void> {
    this.subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => this.handler(channel.toString(), decodeEnvelope(message)));
    await Promise.all([this.subscriber.connect(), this.publisher.connect()]);
  }
  protected async subscribeChannel(channel: string): Promise<void> {
    await this.subscriber.subscribe(channel);
  }
  protected async unsubscribeChannel(channel: string): Promise<void> {
    await this.subscriber.unsubscribe(channel);
  }
  async publish(channel: string, envelope: BusEnvelope): Promise<number> {
    return this.publisher.publish(channel, encodeEnvelope(envelope));
  }
  health(): LaneHealth {
    return { lane: 'bus', driver: this.driver, ok: this.subscriber.status === 'ready' };
  }
  protected async shutdown(): Promise<void> {
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }
}

async function deleteKeys(pattern: string): Promise<void> {
  if (!admin) return;
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await admin.del(...keys);
  } while (cursor !== '0');
}

after(async () => {
  await deleteKeys(`${namespace}*`);
  admin?.disconnect();
});

historyConformance(
  'redis-streams',
  (_bus, options) => new RedisStreamsHistory({ url: REDIS_URL, prefix: `${namespace}:c`, approximateTrim: false, ...options }),
  undefined,
  { createBus: () => new ObserverBus(), skip },
);

describe('RedisStreamsHistory', { skip }, () => {
  const room: RoomRef = { tenant: 'acme', room: 'lobby' };
  const draft = (n: number, extra: Partial<ChatDraft> = {}): ChatDraft => ({
    op: 'message',
    class: 'chat',
    room: room.room,
    id: `m${n}`,
    from: 'alice',
    ts: n,
    data: { n, tricky: '"offset":"x" \\" ü' },
    ...extra,
  });
  const target = (channel: string): AppendTarget => ({
    channel,
    envelope: (message) => ({ v: 1, type: 'deliver', id: message.id, origin: 'n1', class: 'chat', payload: JSON.stringify(message) }),
  });

  it('starts a new epoch at offset 1 when the log is lost', async () => {
    const prefix = `${namespace}:lost`;
    const history = new RedisStreamsHistory({ url: REDIS_URL, prefix });
    await history.start();
    const first = await history.append(room, draft(1), target(`${prefix}:ch`));
    await history.append(room, draft(2), target(`${prefix}:ch`));
    await deleteKeys(`${prefix}:*`);
    const fresh = await history.append(room, draft(3), target(`${prefix}:ch`));
    assert.equal(fresh.message.offset, 1);
    assert.notEqual(fresh.message.epoch, first.message.epoch);
    const resumed = await history.since(room, { offset: 2, epoch: first.message.epoch }, 10);
    assert.equal(resumed.recovered, false);
    assert.deepEqual(resumed.messages, [fresh.message]);
    await history.close();
  });

  it('sets a TTL on the room log', async () => {
    const prefix = `${namespace}:ttl`;
    const history = new RedisStreamsHistory({ url: REDIS_URL, prefix, ttlMs: 60_000 });
    await history.start();
    await history.append(room, draft(1, { cmid: 'c' }), target(`${prefix}:ch`));
    for (const suffix of ['meta', 'stream', 'idem:alice:c']) {
      const ttl = await admin!.pttl(history.key(room, suffix));
      assert.ok(ttl > 0, `${suffix} has ttl ${ttl}`);
    }
    await history.close();
  });

  it('gives two nodes appending to one room one contiguous order', async () => {
    const prefix = `${namespace}:two`;
    const channel = `${prefix}:ch`;
    const bus = new ObserverBus();
    const seen: number[] = [];
    await bus.start((_channel, envelope) => seen.push((JSON.parse(envelope.payload) as ChatMessage).offset));
    await bus.acquire(channel);
    const a = new RedisStreamsHistory({ url: REDIS_URL, prefix });
    const b = new RedisStreamsHistory({ url: REDIS_URL, prefix });
    await Promise.all([a.start(), b.start()]);
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).append(room, draft(i), target(channel))));
    assert.deepEqual(
      results.map((r) => r.message.offset).sort((x, y) => x - y),
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
    await waitFor(() => seen.length === 60, { what: '60 publishes' });
    assert.deepEqual(
      seen,
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
    await Promise.all([a.close(), b.close(), bus.close()]);
  });

  it('fills the offset into a JSON-encoded envelope too (escaped payload)', async () => {
    const prefix = `${namespace}:json`;
    const channel = `${prefix}:ch`;
    const subscriber = new Redis(REDIS_URL);
    const received: string[] = [];
    subscriber.on('message', (_channel: string, message: string) => received.push(message));
    await subscriber.subscribe(channel);
    const history = new RedisStreamsHistory({ url: REDIS_URL, prefix, encode: (envelope) => JSON.stringify(envelope) });
    await history.start();
    const stored = await history.append(room, draft(1), target(channel));
    await waitFor(() => received.length === 1, { what: 'one publish' });
    const envelope = JSON.parse(received[0]!) as BusEnvelope;
    assert.deepEqual(JSON.parse(envelope.payload), stored.message);
    assert.equal(stored.message.offset, 1);
    assert.deepEqual(stored.message.data, draft(1).data);
    await history.close();
    subscriber.disconnect();
  });

  it('refuses an envelope that carries the offset outside its payload', async () => {
    const prefix = `${namespace}:bad`;
    const history = new RedisStreamsHistory({ url: REDIS_URL, prefix });
    await history.start();
    const bad: AppendTarget = { channel: 'x', envelope: (message) => ({ ...target('x').envelope(message), id: `${message.offset}` }) };
    await assert.rejects(history.append(room, draft(1), bad), { name: 'NerveError', code: 'internal' });
    await history.close();
  });

  it('answers unavailable, never hangs, when Redis cannot be reached', async () => {
    const history = new RedisStreamsHistory({ url: 'redis://127.0.0.1:1', prefix: `${namespace}:down` });
    await assert.rejects(history.start(), { name: 'NerveError', code: 'unavailable' });
    assert.equal(history.health().ok, false);
    await history.close();
  });
});
