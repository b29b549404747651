/**
 * Read positions in PostgreSQL: the PostgresReadPositions driver (a cluster
 * without Redis) through the seam's conformance suite, and the chat-store
 * worker's writer of `read.updated` (ReadPositionTable), forward only when
 * events come out of order. A random schema, dropped afterwards.
 *
 * PostgreSQL missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { readUpdated } from '../../src/events/events.js';
import { MemoryEventLog } from '../../src/events/memory.js';
import { applyMigrations } from '../../src/postgres/migrations.js';
import { NerveNode } from '../../src/node.js';
import { ReadPositionTable } from '../../src/postgres/read-positions.js';
import { PostgresReadPositions } from '../../src/receipts/postgres.js';
import { receiptsConformance } from '../conformance/receipts.js';
import { POSTGRES_URL, createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { RawClient } from '../helpers/raw-client.js';
import { runWorker } from '../../src/workers/runner.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await postgresSkip()) ?? false;
const schema = testNamespace('rpg');
let db: TestDatabase | undefined;

before(async () => {
  if (skip) return;
  db = await createTestDatabase(schema);
  await applyMigrations(db.pool, schema);
});

after(async () => {
  await db?.drop();
});

receiptsConformance('postgres', () => new PostgresReadPositions({ pool: db!.pool, schema, migrate: false }), { skip });

describe('read_positions from read.updated (chat-store worker)', { skip }, () => {
  it('keeps the latest position whatever order the events come in', async () => {
    const table = new ReadPositionTable(schema);
    const pool = db!.pool;
    const row = { tenant: 't', room: 'r', user: 'ann' };
    const stored = async () =>
      (
        await pool.query<{ epoch: string; read_offset: string }>(
          `SELECT epoch, read_offset FROM "${schema}".read_positions WHERE tenant = 't' AND room = 'r' AND user_id = 'ann'`,
        )
      ).rows[0];
    await table.record(pool, { ...row, epoch: 'e1', offset: 7, at: 1000 });
    await table.record(pool, { ...row, epoch: 'e1', offset: 5, at: 900 });
    await table.record(pool, { ...row, epoch: 'e1', offset: 7, at: 1000 });
    assert.deepEqual(await stored(), { epoch: 'e1', read_offset: '7' }, 'a lower or repeated offset changes nothing');
    await table.record(pool, { ...row, epoch: 'e0', offset: 50, at: 500 });
    assert.deepEqual(await stored(), { epoch: 'e1', read_offset: '7' }, 'an older event of another epoch changes nothing');
    await table.record(pool, { ...row, epoch: 'e2', offset: 1, at: 2000 });
    assert.deepEqual(await stored(), { epoch: 'e2', read_offset: '1' }, 'a newer epoch replaces it');
  });

  it('the chat-store worker records read.updated events, the latest position per user and room', async () => {
    const log = new MemoryEventLog();
    const worker = await runWorker('chat-store', { eventLog: log, pool: db!.pool, schema, logger: pino({ level: 'silent' }) });
    try {
      const source = { tenant: 'acme', room: 'lobby', session: 's1', node: 'n1' };
      await log.publish(readUpdated({ ...source, ts: 1000 }, { user: 'bob', offset: 4, epoch: 'e1' }));
      await log.publish(readUpdated({ ...source, ts: 900 }, { user: 'bob', offset: 2, epoch: 'e1' }));
      await log.publish(readUpdated({ ...source, ts: 1100 }, { user: 'cat', offset: 1, epoch: 'e1' }));
      const rows = async () =>
        (
          await db!.pool.query<{ user_id: string; read_offset: string }>(
            `SELECT user_id, read_offset FROM "${schema}".read_positions WHERE tenant = 'acme' ORDER BY user_id`,
          )
        ).rows;
      await waitFor(async () => (await rows()).length === 2, { what: 'two rows' });
      const acked = async () => (await worker.metrics.events.get()).values.find((value) => value.labels.outcome === 'ack')?.value;
      await waitFor(async () => (await acked()) === 3, { what: 'three events acked' });
      assert.deepEqual(await rows(), [
        { user_id: 'bob', read_offset: '4' },
        { user_id: 'cat', read_offset: '1' },
      ]);
      assert.deepEqual(log.deadLetters('chat-store-reads'), []);
    } finally {
      await worker.close();
      await log.close();
    }
  });
});

describe('one forward-only rule for both writers of read_positions (gateway and chat-store worker)', { skip }, () => {
  const user = 'ann';
  let rooms = 0;

  async function writers(): Promise<{
    gateway: PostgresReadPositions;
    worker: ReadPositionTable;
    room: { tenant: string; room: string };
    stored: () => Promise<{ epoch: string; read_offset: string; updated_at: string } | undefined>;
  }> {
    const gateway = new PostgresReadPositions({ pool: db!.pool, schema, migrate: false });
    await gateway.open();
    const room = { tenant: 'rule', room: `room-${++rooms}` };
    const stored = async () =>
      (
        await db!.pool.query<{ epoch: string; read_offset: string; updated_at: string }>(
          `SELECT epoch, read_offset, updated_at FROM "${schema}".read_positions WHERE tenant = $1 AND room = $2 AND user_id = $3`,
          [room.tenant, room.room, user],
        )
      ).rows[0];
    return { gateway, worker: new ReadPositionTable(schema), room, stored };
  }

  it("the worker's repeat of the gateway's write changes nothing, nor does an older event of the epoch", async () => {
    const { gateway, worker, room, stored } = await writers();
    const before = Date.now();
    assert.deepEqual(await gateway.advance(room, user, { offset: 4, epoch: 'e1' }), { position: { offset: 4, epoch: 'e1' }, advanced: true });
    const row = await stored();
    assert.ok(Number(row!.updated_at) >= before);
    // The read.updated of that advance, emitted after it, and an older one of the epoch.
    await worker.record(db!.pool, { ...room, user, epoch: 'e1', offset: 4, at: Number(row!.updated_at) + 5 });
    await worker.record(db!.pool, { ...room, user, epoch: 'e1', offset: 3, at: Number(row!.updated_at) + 9 });
    assert.deepEqual(await stored(), row);
    await gateway.close();
  });

  it('a forward move from a node whose clock is behind keeps the later stamp: an older event of another epoch cannot win after it', async () => {
    const { gateway, worker, room, stored } = await writers();
    const ahead = Date.now() + 60_000;
    // A node whose clock is a minute ahead emitted e2/5; this node's clock is right.
    await worker.record(db!.pool, { ...room, user, epoch: 'e2', offset: 5, at: ahead });
    assert.equal((await gateway.advance(room, user, { offset: 6, epoch: 'e2' })).advanced, true);
    // A late event of that node from before the log's reset (e1), stamped before its e2 one.
    await worker.record(db!.pool, { ...room, user, epoch: 'e1', offset: 9, at: ahead - 30_000 });
    assert.deepEqual(await stored(), { epoch: 'e2', read_offset: '6', updated_at: String(ahead + 1) });
    await gateway.close();
  });

  it("the gateway moves a row to the log's new epoch whatever its clock, and a redelivered event of the old one cannot move it back", async () => {
    const { gateway, worker, room, stored } = await writers();
    const ahead = Date.now() + 60_000;
    await worker.record(db!.pool, { ...room, user, epoch: 'e1', offset: 10, at: ahead });
    assert.deepEqual(await gateway.advance(room, user, { offset: 3, epoch: 'e2' }), { position: { offset: 3, epoch: 'e2' }, advanced: true });
    await worker.record(db!.pool, { ...room, user, epoch: 'e1', offset: 10, at: ahead });
    assert.deepEqual(await stored(), { epoch: 'e2', read_offset: '3', updated_at: String(ahead + 1) });
    assert.deepEqual(await gateway.advance(room, user, { offset: 2, epoch: 'e2' }), { position: { offset: 3, epoch: 'e2' }, advanced: false });
    await gateway.close();
  });

  it('a newer event of another epoch still replaces a row the gateway wrote', async () => {
    const { gateway, worker, room, stored } = await writers();
    await gateway.advance(room, user, { offset: 8, epoch: 'e1' });
    await worker.record(db!.pool, { ...room, user, epoch: 'e2', offset: 1, at: Date.now() + 60_000 });
    assert.deepEqual((await gateway.read(room, user, 0)).own, { offset: 1, epoch: 'e2' });
    assert.equal((await stored())!.epoch, 'e2');
    await gateway.close();
  });
});

describe('GET /api/users/:user/unread', { skip }, () => {
  it("answers the user's rooms with the position and the archived messages after it, from PostgreSQL", async () => {
    const key = 'receipts-api-key-'.padEnd(32, 'k');
    const node = new NerveNode({ port: 0, host: '127.0.0.1', logLevel: 'silent', demo: false, apiKey: key, postgresUrl: POSTGRES_URL, postgresSchema: schema });
    const address = await node.start();
    const client = await RawClient.connect(`ws://127.0.0.1:${address.port}/ws`, 'gus');
    try {
      // Without Redis the node keeps read positions in PostgreSQL itself.
      const joined = await client.request({ op: 'join', room: 'news' });
      const epoch = (joined.position as { epoch: string }).epoch;
      for (const text of ['a', 'b', 'c']) assert.equal((await client.request({ op: 'publish', room: 'news', class: 'chat', data: text })).op, 'ack');
      assert.equal((await client.request({ op: 'read', room: 'news', offset: 1 })).offset, 1);
      // The archive as the chat-store worker fills it: offsets 2 and 3 by others, 4 gus's own, 5 a reaction entry.
      const rows: Array<[number, string, string | null]> = [
        [1, 'ann', null],
        [2, 'ann', null],
        [3, 'bob', null],
        [4, 'gus', null],
        [5, 'ann', 'react'],
      ];
      for (const [offset, sender, action] of rows) {
        await db!.pool.query(
          `INSERT INTO "${schema}".chat_messages (tenant, id, room, sender, sent_at, room_offset, epoch, body, event_id, action) VALUES ('default', $1, 'news', $2, $3, $3, $4, 'null', $1, $5)`,
          [`news-${offset}`, sender, offset, epoch, action],
        );
      }
      const response = await fetch(`http://127.0.0.1:${address.port}/api/users/gus/unread`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(response.status, 200);
      assert.deepEqual(await response.json(), { user: 'gus', rooms: [{ room: 'news', epoch, read: 1, unread: 2 }] });
      const bad = await fetch(`http://127.0.0.1:${address.port}/api/users/${encodeURIComponent('a b')}/unread`, {
        headers: { authorization: `Bearer ${key}` },
      });
      assert.deepEqual([bad.status, ((await bad.json()) as { code: string }).code], [400, 'invalid_user']);
    } finally {
      client.close();
      await node.stop();
    }
  });
});
