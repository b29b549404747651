/**
 * History paging on a private 3-master Redis Cluster (`--redis-mode
 * sharded`): the page script reads one room's keys, which share its hash
 * tag, so it runs in the room's slot like the append; the archive below the
 * stream is the real PostgreSQL chat tables, under a random schema.
 *
 * redis-server or PostgreSQL missing: fails in CI (CI=true), skipped elsewhere.
 */
import { after, before } from 'node:test';
import { applyMigrations } from '../../src/postgres/migrations.js';
import { historyPagingConformance, redisStreamsSubject } from '../conformance/history-paging.js';
import { createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { redisServerSkipReason, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await redisServerSkipReason()) ?? (await postgresSkip()) ?? false;
const namespace = testNamespace('hpagec');
let cluster: RedisCluster | undefined;
let db: TestDatabase | undefined;
let subjects = 0;

before(async () => {
  if (skip) return;
  cluster = await startRedisCluster();
  db = await createTestDatabase(namespace);
  await applyMigrations(db.pool, namespace);
});

after(async () => {
  await cluster?.stop();
  await db?.drop();
});

historyPagingConformance('redis-streams on a Redis Cluster, SPUBLISH, with the PostgreSQL archive', {
  skip,
  create(options) {
    if (!cluster || !db) throw new Error('cluster or database not started');
    subjects += 1;
    return redisStreamsSubject({ nodes: cluster.nodes, publishCommand: 'SPUBLISH', prefix: `${namespace}:s${subjects}` }, db.pool, namespace, options);
  },
});
