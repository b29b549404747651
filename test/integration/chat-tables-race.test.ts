/**
 * A room's first use by several nodes at once, on a real PostgreSQL: every
 * one of them gets the room's log row. Each statement creates the row on
 * first use (INSERT … ON CONFLICT DO NOTHING in a CTE); one that lost the
 * race to a concurrent insert sees no row in its own snapshot, which used to
 * answer joins `internal` ("room log row vanished") in --bus rabbitmq.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { applyMigrations } from '../../src/postgres/migrations.js';
import { ChatTables } from '../../src/postgres/chat-tables.js';
import { createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await postgresSkip()) ?? false;

describe('chat tables: a room first used by several nodes at once', { skip }, () => {
  const schema = testNamespace('race');
  let db: TestDatabase;

  before(async () => {
    db = await createTestDatabase(schema);
    await applyMigrations(db.pool, schema);
  });
  after(async () => {
    await db?.drop();
  });

  it('gives every concurrent first reader the log row, with one epoch', async () => {
    const tables = new ChatTables(schema);
    for (let room = 0; room < 30; room++) {
      const rows = await Promise.all(['e1', 'e2', 'e3', 'e4'].map((epoch) => tables.logRow(db.pool, 'acme', `room-${room}`, epoch)));
      assert.ok(
        rows.every((row) => row !== undefined),
        `room-${room}: every reader got the row`,
      );
      assert.equal(new Set(rows.map((row) => row?.epoch)).size, 1, `room-${room}: one epoch`);
    }
  });
});
