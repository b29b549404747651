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
import { RabbitBus } from '../../src/bus/rabbitmq.js';
import { hotExchangeName } from '../../src/bus/rabbitmq-routing.js';
import type { AppendTarget, ChatDraft, RoomRef } from '../../src/history/history.js';
import { PostgresHistory } from '../../src/history/postgres.js';
import { applyMigrations } from '../../src/workers/db.js';
import type { ChatMessage } from '../../src/protocol/frames.js';
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

historyConformance(
  'postgres',
  (bus, options) => new PostgresHistory({ pool: db!.pool, schema, bus, migrate: false, ...options }),
  undefined,
  { skip },
);

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
    const draft = (n: number, from: string): ChatDraft => ({ op: 'message', class: 'chat', room: room.room, id: `${from}-${n}-${testNamespace('')}`, from, ts: Date.now(), data: { n } });
    const results = await Promise.all(
      histories.flatMap((history, h) => Array.from({ length: 40 }, (_, n) => history.append(room, draft(n, `u${h}`), target))),
    );
    assert.deepEqual(results.map((r) => r.message.offset).sort((a, b) => a - b), Array.from({ length: 80 }, (_, i) => i + 1));
    await waitFor(() => received.every((list) => list.length === 80), { timeoutMs: 10_000, what: '80 envelopes on every node' });
    for (const list of received) {
      const offsets = list.map((e) => (JSON.parse(e.payload) as ChatMessage).offset);
      assert.deepEqual(offsets, Array.from({ length: 80 }, (_, i) => i + 1), 'delivery order is offset order');
    }
    const replay = await histories[1]!.since(room, { offset: 70, epoch: results[0]!.message.epoch }, 100);
    assert.equal(replay.recovered, true);
    assert.deepEqual(replay.messages.map((m) => m.offset), [71, 72, 73, 74, 75, 76, 77, 78, 79, 80]);
    for (const history of histories) await history.close();
  });
});
