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
import { PostgresHistory } from '../../src/history/postgres.js';
import { applyMigrations } from '../../src/postgres/migrations.js';
import { historyPagingConformance, redisStreamsSubject } from '../conformance/history-paging.js';
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
  create(options) {
    subjects += 1;
    // deleteNamespaceKeys removes `{namespace}:nerve:*`.
    return redisStreamsSubject({ url: SHARED_REDIS_URL, prefix: `${namespace}:nerve:s${subjects}` }, database().pool, namespace, options);
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
