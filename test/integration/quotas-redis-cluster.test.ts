/**
 * The quota scripts on Redis Cluster (`--redis-mode sharded`): each tenant's
 * keys share one slot (its hash tag), the lease script's window key
 * included, so every script runs where its keys are. Two backends stand for
 * two nodes.
 *
 * redis-server missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster } from 'ioredis';
import { RedisQuotaBackend } from '../../src/quotas/backend.js';
import { RedisTenantQuotas } from '../../src/quotas/store.js';
import { redisServerSkipReason, startRedisCluster, type RedisCluster } from '../helpers/redis-server.js';
import { testNamespace } from '../helpers/wait.js';

const skip = (await redisServerSkipReason()) ?? false;

describe('quota scripts on Redis Cluster', { skip, timeout: 60_000 }, () => {
  let cluster: RedisCluster;
  let client: Cluster;
  const prefix = `${testNamespace('qc')}:nerve`;

  before(async () => {
    cluster = await startRedisCluster(3);
    client = new Cluster(cluster.nodes);
    client.on('error', () => {});
  });
  after(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  it('shares leases, connection counts, rooms and stored bytes between nodes', async () => {
    const a = new RedisQuotaBackend(client, prefix, 'n1', 3000);
    const b = new RedisQuotaBackend(client, prefix, 'n2', 3000);
    // Tenants spread over slots: each one's keys stay in its own.
    for (const tenant of ['acme', 'globex', 'initech']) {
      let granted = 0;
      for (let i = 0; i < 10; i += 1) granted += (await (i % 2 === 0 ? a : b).lease(tenant, 'publishes', 25, 10)).granted;
      // 25 per Redis second; the loop may span two seconds.
      assert.ok(granted >= 25 && granted <= 50, `${tenant}: granted ${granted}`);
      assert.equal(await a.admitConnection(tenant, 1, 2), true);
      assert.equal(await b.admitConnection(tenant, 1, 2), true);
      assert.equal(await b.admitConnection(tenant, 2, 2), false);
      await a.syncConnections(new Map([[tenant, 0]]));
      assert.equal(await b.admitConnection(tenant, 2, 2), true);
      assert.equal(await a.admitRoom(tenant, 'r1', 1), true);
      await b.touchRooms(new Map([[tenant, ['r1']]]));
      assert.equal(await b.admitRoom(tenant, 'r2', 1), false);
      assert.equal(await a.addStoredBytes(tenant, 10, 60_000), 10);
      assert.equal(await b.addStoredBytes(tenant, 5, 60_000), 15);
    }
    const store = new RedisTenantQuotas(new Map(), client, prefix);
    await store.set('acme', { rooms: 3 });
    const other = new RedisTenantQuotas(new Map(), client, prefix);
    await other.refresh();
    assert.deepEqual(other.effective('acme'), { rooms: 3 });
  });
});
