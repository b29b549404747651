/**
 * chat-store and analytics against PostgreSQL (lane: the memory EventLog,
 * whose behaviour the conformance suite ties to RabbitMQ's).
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { messageCreated, participantJoined, participantLeft, roomCreated, roomEnded } from '../../src/events/events.js';
import { MemoryEventLog } from '../../src/events/memory.js';
import { readStoredMessages, InvalidCursorError } from '../../src/postgres/stored-messages.js';
import { applyMigrations } from '../../src/postgres/migrations.js';
import { runWorker } from '../../src/workers/runner.js';
import { createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = await postgresSkip();
const silent = pino({ level: 'silent' });
const source = (room: string, extra: { id?: string } = {}) => ({ tenant: 'acme', room, session: `s-${room}`, node: 'n1', ...extra });

describe('PostgreSQL workers', { skip }, () => {
  const ns = testNamespace('store');
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase(ns);
  });
  after(async () => {
    await db.drop();
  });

  it('applies migrations once, tracked in nerve_migrations', async () => {
    const first = await applyMigrations(db.pool, ns);
    const again = await applyMigrations(db.pool, ns);
    // Every file in migrations/, in name order: a new migration must not need this test edited.
    const shipped = (await readdir(new URL('../../migrations/', import.meta.url))).filter((name) => name.endsWith('.sql')).sort();
    assert.ok(shipped.includes('001_chat_messages.sql'), 'migrations/ holds the chat table');
    assert.deepEqual(first, shipped);
    assert.deepEqual(again, []);
  });

  it('chat-store stores each message once and pages a room newest first', async () => {
    const log = new MemoryEventLog();
    const worker = await runWorker('chat-store', { eventLog: log, pool: db.pool, schema: ns, logger: silent });
    try {
      const message = (i: number, id?: string) =>
        messageCreated(source('lobby', id ? { id } : {}), {
          messageId: `m${i}`,
          from: 'alice',
          offset: i,
          epoch: 'e1',
          sentAt: 1000 + i,
          body: { text: `hello ${i}` },
          ...(i === 1 ? { cmid: 'c1' } : {}),
        });
      for (let i = 1; i <= 5; i++) await log.publish(message(i));
      await log.publish(message(3)); // re-emitted with a new event id
      const dup = message(4, 'same-event');
      await log.publish(dup);
      await log.publish(dup); // redelivered
      const count = async () => Number((await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${ns}".chat_messages`)).rows[0]!.n);
      // All 8 deliveries handled, each answered `ack`: a duplicate that broke
      // the ON CONFLICT path would throw and count as a retry instead.
      const outcomes = async () => {
        const values = (await worker.metrics.events.get()).values;
        return Object.fromEntries(values.map((value) => [String(value.labels.outcome), value.value]));
      };
      await waitFor(async () => (await outcomes()).ack === 8, { what: 'eight deliveries acked' });
      assert.deepEqual(await outcomes(), { ack: 8 });
      assert.equal(await count(), 5);
      assert.deepEqual(log.deadLetters('chat-store'), []);
      const page1 = await readStoredMessages(db.pool, ns, 'acme', 'lobby', { limit: 2 });
      assert.deepEqual(
        page1.messages.map((m) => m.id),
        ['m4', 'm5'],
      );
      assert.deepEqual(page1.messages[1]?.data, { text: 'hello 5' });
      assert.equal(page1.messages[0]?.from, 'alice');
      assert.ok(page1.next);
      const page2 = await readStoredMessages(db.pool, ns, 'acme', 'lobby', { limit: 2, before: page1.next });
      assert.deepEqual(
        page2.messages.map((m) => m.id),
        ['m2', 'm3'],
      );
      const page3 = await readStoredMessages(db.pool, ns, 'acme', 'lobby', { limit: 2, before: page2.next! });
      assert.deepEqual(
        page3.messages.map((m) => m.id),
        ['m1'],
      );
      assert.equal(page3.messages[0]?.cmid, 'c1');
      assert.equal(page3.next, null);
      assert.deepEqual((await readStoredMessages(db.pool, ns, 'acme', 'other', {})).messages, []);
      await assert.rejects(readStoredMessages(db.pool, ns, 'acme', 'lobby', { before: 'garbage' }), InvalidCursorError);
    } finally {
      await worker.close();
      await log.close();
    }
  });

  it('analytics aggregates per room: messages, peak participants, duration', async () => {
    const log = new MemoryEventLog();
    const worker = await runWorker('analytics', { eventLog: log, pool: db.pool, schema: ns, prefetch: 1, logger: silent });
    try {
      const room = 'stats';
      await log.publish(roomCreated(source(room)));
      for (const user of ['a', 'b', 'c']) await log.publish(participantJoined(source(room), { user }));
      await log.publish(participantLeft(source(room), { user: 'c', reason: 'node_crash' }));
      const joined = participantJoined(source(room), { user: 'd' });
      await log.publish(joined);
      await log.publish(joined); // duplicate delivery: applied once
      await log.publish(messageCreated(source(room), { messageId: 'x1', from: 'a', offset: 1, epoch: 'e', sentAt: 1, body: 'hi' }));
      await log.publish(roomEnded(source(room), { startedAt: 0, durationMs: 90_000, participants: [{ user: 'a', ms: 1 }] }));
      const row = await waitFor(
        async () =>
          (
            await db.pool.query<Record<string, string | number | null>>(`SELECT * FROM "${ns}".room_stats WHERE room = $1 AND last_ended_at IS NOT NULL`, [
              room,
            ])
          ).rows[0],
        { what: 'room stats' },
      );
      assert.equal(row.sessions, 1);
      assert.equal(Number(row.messages), 1);
      assert.equal(row.peak_participants, 3);
      assert.equal(row.current_participants, 0);
      assert.equal(Number(row.total_duration_ms), 90_000);
    } finally {
      await worker.close();
      await log.close();
    }
  });
});
