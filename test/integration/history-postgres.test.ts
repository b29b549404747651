/**
 * PostgresHistory (the replay lane of `--bus rabbitmq`, project issue 6): the
 * History conformance suite on the shared PostgreSQL (a schema per run,
 * dropped afterwards), then two "nodes" appending to one room concurrently
 * through two RabbitBus instances: every receiver sees offset order.
 *
 * PostgreSQL or RabbitMQ missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BusEnvelope } from '../../src/bus/bus.js';
import { MemoryBus } from '../../src/bus/memory.js';
import { RabbitBus } from '../../src/bus/rabbitmq.js';
import { hotExchangeName } from '../../src/bus/rabbitmq-routing.js';
import type { AppendTarget, ChatDraft, RoomRef } from '../../src/history/history.js';
import { PostgresHistory } from '../../src/history/postgres.js';
import { applyMigrations } from '../../src/postgres/migrations.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';
import { historyConformance } from '../conformance/history.js';
import { createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';
import { Connection } from 'rabbitmq-client';

const skip = (await postgresSkip()) ?? false;
const rabbitSkip = skip || ((await serviceSkip('RabbitMQ', 5672)) ?? false);
const schema = testNamespace('ph').toLowerCase();
const db: TestDatabase | undefined = skip ? undefined : await createTestDatabase(schema);
if (db) await applyMigrations(db.pool, schema);

historyConformance('postgres', (bus, options) => new PostgresHistory({ pool: db!.pool, schema, bus, migrate: false, ...options }), undefined, { skip });

describe('PostgresHistory group commit', { skip }, () => {
  it('stores a burst to one room in call order; a repeat within the burst gets the first; messages PostgreSQL refuses fail alone', async () => {
    const bus = new MemoryBus();
    const delivered: number[] = [];
    await bus.start((_channel, envelope) => delivered.push((JSON.parse(envelope.payload) as ChatMessage).offset));
    const room: RoomRef = { tenant: 't', room: testNamespace('burst') };
    const channel = `burst:${room.room}`;
    await bus.acquire(channel);
    const history = new PostgresHistory({ pool: db!.pool, schema, bus, migrate: false });
    await history.start();
    const target: AppendTarget = {
      channel,
      envelope: (message) => ({ v: 1, type: 'deliver', id: message.id, origin: 'x', class: 'chat', payload: JSON.stringify(message) }),
    };
    const draft = (n: number): ChatDraft => ({
      op: 'message',
      class: 'chat',
      room: room.room,
      id: `${room.room}-${n}`,
      from: 'u1',
      ts: Date.now(),
      // n = 10: jsonb cannot hold U+0000; n = 40: nor can a text parameter (the read fails). n = 20 and 30 share a cmid.
      data: n === 10 ? 'bad \u0000 byte' : { n },
      ...(n === 20 || n === 30 ? { cmid: 'same' } : n === 40 ? { cmid: 'nul \u0000' } : {}),
    });
    // Issued in one turn: they wait behind the first one's lock and go as one batch.
    const settled = await Promise.allSettled(Array.from({ length: 50 }, (_, n) => history.append(room, draft(n), target)));
    for (const n of [10, 40]) {
      const poison = settled[n]!;
      assert.equal(poison.status, 'rejected', `append ${n}`);
      assert.equal((poison.reason as { code?: unknown }).code, 'internal', `append ${n}`);
    }
    const results = settled.map((result) => (result.status === 'fulfilled' ? result.value : undefined));
    const repeat = results[30]!;
    assert.deepEqual([repeat.duplicate, repeat.message.id], [true, `${room.room}-20`], 'the repeat is answered with the first');
    const fresh = results.filter((result, n) => result && n !== 30);
    assert.deepEqual(
      fresh.map((result) => result!.message.offset),
      Array.from({ length: 47 }, (_, i) => i + 1),
      'offsets follow call order, without the refused ones',
    );
    assert.deepEqual(
      delivered,
      Array.from({ length: 47 }, (_, i) => i + 1),
      'published once each, in offset order',
    );
    const replay = await history.recent(room, 100);
    assert.equal(replay.messages.length, 47);
    await history.close();
    await bus.close();
  });
});

describe('PostgresHistory across two nodes on RabbitMQ', { skip: rabbitSkip }, () => {
  const env = testNamespace('phr');
  const buses: RabbitBus[] = [];
  let admin: Connection;

  before(() => {
    admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
  });
  after(async () => {
    await Promise.allSettled(buses.map((b) => b.close()));
    await admin.exchangeDelete({ exchange: hotExchangeName(env, 'nerve') }).catch(() => undefined);
    await admin.close();
    await db?.drop();
  });

  it('keeps offsets contiguous and every node receives the room in offset order under concurrent appends from two nodes', async () => {
    const room: RoomRef = { tenant: 't', room: testNamespace('r') };
    const channel = `${env}:nerve:t:room:${room.room}`;
    const received: BusEnvelope[][] = [[], [], []];
    for (let i = 0; i < 3; i += 1) {
      const bus = new RabbitBus({ url: AMQP_URL, env, nodeId: `n${i}`, canaryIntervalMs: 0 });
      buses.push(bus);
      await bus.start((ch, envelope) => {
        if (ch === channel) received[i]!.push(envelope);
      });
      await bus.acquire(channel);
    }
    const histories = buses.slice(0, 2).map((bus) => new PostgresHistory({ pool: db!.pool, schema, bus, migrate: false }));
    for (const history of histories) await history.start();
    const target: AppendTarget = {
      channel,
      envelope: (message) => ({ v: 1, type: 'deliver', id: message.id, origin: 'x', class: 'chat', payload: JSON.stringify(message) }),
    };
    const draft = (n: number, from: string): ChatDraft => ({
      op: 'message',
      class: 'chat',
      room: room.room,
      id: `${from}-${n}-${testNamespace('')}`,
      from,
      ts: Date.now(),
      data: { n },
    });
    const results = await Promise.all(histories.flatMap((history, h) => Array.from({ length: 40 }, (_, n) => history.append(room, draft(n, `u${h}`), target))));
    assert.deepEqual(
      results.map((r) => r.message.offset).sort((a, b) => a - b),
      Array.from({ length: 80 }, (_, i) => i + 1),
    );
    await waitFor(() => received.every((list) => list.length === 80), { timeoutMs: 10_000, what: '80 envelopes on every node' });
    for (const list of received) {
      const offsets = list.map((e) => (JSON.parse(e.payload) as ChatMessage).offset);
      assert.deepEqual(
        offsets,
        Array.from({ length: 80 }, (_, i) => i + 1),
        'delivery order is offset order',
      );
    }
    const replay = await histories[1]!.since(room, { offset: 70, epoch: results[0]!.message.epoch }, 100);
    assert.equal(replay.recovered, true);
    assert.deepEqual(
      replay.messages.map((m) => m.offset),
      [71, 72, 73, 74, 75, 76, 77, 78, 79, 80],
    );
    for (const history of histories) await history.close();
  });
});
