/**
 * History paging against the real stores: the Redis Streams history whose
 * archive is the PostgreSQL chat tables (filled as the chat-store worker
 * fills them, through ChatTables.insertEvent, so rows have no message_json),
 * and the PostgreSQL history of `--bus rabbitmq`, which is its own archive.
 * Random key prefix and schema, both removed afterwards.
 *
 * Redis or PostgreSQL missing: fails in CI (CI=true), skipped elsewhere.
 */
import { after, before } from 'node:test';
import { MemoryBus } from '../../src/bus/memory.js';
import { PostgresChatArchive } from '../../src/history/archive.js';
import { PostgresHistory } from '../../src/history/postgres.js';
import { RedisStreamsHistory } from '../../src/history/redis-streams.js';
import { applyMigrations } from '../../src/postgres/migrations.js';
import { historyPagingConformance, storeAsChatStore } from '../conformance/history-paging.js';
import { deleteNamespaceKeys } from '../helpers/cluster.js';
import { createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { redisSkipReason, SHARED_REDIS_URL } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await redisSkipReason(SHARED_REDIS_URL)) ?? (await postgresSkip()) ?? false;
const namespace = testNamespace('hpage');
let db: TestDatabase | undefined;
let subjects = 0;

before(async () => {
  if (skip) return;
  db = await createTestDatabase(namespace);
  await applyMigrations(db.pool, namespace);
});

after(async () => {
  await deleteNamespaceKeys(SHARED_REDIS_URL, namespace);
  await db?.drop();
});

function database(): TestDatabase {
  if (!db) throw new Error('no test database');
  return db;
}

historyPagingConformance('redis-streams with the PostgreSQL archive', {
  skip,
  async create({ maxMessages, archive }) {
    const { pool } = database();
    subjects += 1;
    const history = new RedisStreamsHistory({
      url: SHARED_REDIS_URL,
      // deleteNamespaceKeys removes `{namespace}:nerve:*`.
      prefix: `${namespace}:nerve:s${subjects}`,
      maxMessages,
      // Exact trimming, so the stream holds exactly `maxMessages` and the seam is where the test says.
      approximateTrim: false,
      archive: archive ? new PostgresChatArchive(pool, namespace) : undefined,
    });
    await history.start();
    return {
      history,
      ...(archive ? { store: storeAsChatStore(pool, namespace) } : {}),
      close: () => history.close(),
    };
  },
});

historyPagingConformance('postgres', {
  skip,
  alwaysArchived: true,
  async create({ maxMessages }) {
    const bus = new MemoryBus();
    await bus.start(() => {});
    const history = new PostgresHistory({ pool: database().pool, schema: namespace, bus, maxMessages, migrate: false });
    await history.start();
    return {
      history,
      async close() {
        await history.close();
        await bus.close();
      },
    };
  },
});
