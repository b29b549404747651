/**
 * Issue 20, usage metering end to end: two nodes (shared Redis, RabbitMQ
 * cold lane) report each tenant's usage every interval as `usage.reported`,
 * the usage worker writes `tenant_usage` in PostgreSQL, and
 * `GET /api/usage` sums it. A node restarted within an interval (same node
 * id) reports that interval's counts of both processes, each once: the
 * stopping process its part, the successor its own under its incarnation's
 * id, added into one row; a re-delivered report is not added again.
 *
 * Redis, RabbitMQ or PostgreSQL missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Connection } from 'rabbitmq-client';
import { usageReported } from '../../src/events/events.js';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { NerveNode } from '../../src/node.js';
import { usageEventId } from '../../src/usage/meter.js';
import { runWorker, type WorkerHandle } from '../../src/workers/runner.js';
import { deleteNamespaceKeys } from '../helpers/cluster.js';
import { createTestDatabase, postgresSkip, POSTGRES_URL, type TestDatabase } from '../helpers/postgres.js';
import { RawClient } from '../helpers/raw-client.js';
import { SHARED_REDIS_URL, redisSkipReason } from '../helpers/redis-server.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';
import { deleteTopology } from '../helpers/rabbitmq.js';

const skip = (await redisSkipReason(SHARED_REDIS_URL)) ?? (await serviceSkip('RabbitMQ', 5672)) ?? (await postgresSkip()) ?? false;

const API_KEY = 'usage-test-operator-key-0123456789';
const INTERVAL = 5000;
const TENANT = 'acme';

describe('usage metering on 2 nodes', { skip, timeout: 90_000 }, () => {
  const ns = testNamespace('usage');
  const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
  const clients: RawClient[] = [];
  /** Every event id the worker finished (applied or found applied already), in order. */
  const handled: string[] = [];
  let db: TestDatabase;
  let admin: Connection;
  let workerLog: RabbitEventLog;
  let worker: WorkerHandle;
  let nodeA: NerveNode;
  let nodeB: NerveNode;
  let httpA: string;
  let portB: number;

  function node(id: string): NerveNode {
    return new NerveNode({
      port: 0,
      host: '127.0.0.1',
      nodeId: id,
      env: ns,
      defaultTenant: TENANT,
      redisUrl: SHARED_REDIS_URL,
      amqpUrl: AMQP_URL,
      postgresUrl: POSTGRES_URL,
      postgresSchema: ns,
      apiKey: API_KEY,
      usageIntervalMs: INTERVAL,
      drainWindowMs: 0,
      logLevel: 'silent',
      demo: false,
    });
  }

  async function connect(port: number, user: string): Promise<RawClient> {
    const client = await RawClient.connect(`ws://127.0.0.1:${port}/ws`, user);
    clients.push(client);
    return client;
  }

  async function usage(): Promise<Record<string, number>> {
    const response = await fetch(`${httpA}/api/usage?tenant=${TENANT}&from=0`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(response.status, 200);
    return (await response.json()) as Record<string, number>;
  }

  before(async () => {
    db = await createTestDatabase(ns);
    admin = new Connection({ url: AMQP_URL });
    admin.on('error', () => undefined);
    workerLog = new RabbitEventLog({ url: AMQP_URL, env: ns, logger });
    await workerLog.start();
    worker = await runWorker('usage', { eventLog: workerLog, pool: db.pool, schema: ns, logger, hooks: { afterCommit: (id) => handled.push(id) } });
    nodeA = node(`${ns}-a`);
    nodeB = node(`${ns}-b`);
    httpA = `http://127.0.0.1:${(await nodeA.start()).port}`;
    portB = (await nodeB.start()).port;
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all([nodeA?.stop(), nodeB?.stop()]);
    await worker?.close();
    await workerLog?.close();
    await deleteTopology(admin, `${ns}.`, { queues: [`${ns}.nerve.usage`, `${ns}.nerve.usage.dlq`], exchanges: [`${ns}.nerve.events`] });
    await admin?.close();
    await deleteNamespaceKeys(SHARED_REDIS_URL, ns);
    await db?.drop();
  });

  it("the worker writes each node's reports and GET /api/usage sums them", async () => {
    const alice = await connect(Number(new URL(httpA).port), 'alice');
    const bob = await connect(portB, 'bob');
    assert.equal((await alice.request({ op: 'join', room: 'r' })).op, 'joined');
    assert.equal((await bob.request({ op: 'join', room: 'r' })).op, 'joined');
    for (let i = 0; i < 4; i += 1) assert.equal((await alice.request({ op: 'publish', room: 'r', class: 'chat', data: { i } })).op, 'ack');
    for (let i = 0; i < 6; i += 1) assert.equal((await bob.request({ op: 'publish', room: 'r', class: 'chat', data: { i } })).op, 'ack');
    for (let i = 0; i < 2; i += 1) assert.equal((await bob.request({ op: 'signal', to: 'alice', kind: 'offer', data: { sdp: 'x' } })).op, 'ack');
    const totals = await waitFor(
      async () => {
        const answer = await usage();
        return answer.messages === 10 && answer.signals === 2 ? answer : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: '10 messages and 2 signals reported' },
    );
    // Every chat message reached both members (the sender's echo included); the signals reached alice.
    assert.ok(totals.deliveries! >= 22, `deliveries ${totals.deliveries}`);
    assert.ok(totals.storedBytes! > 0);
    assert.ok(totals.connectionMinutes! > 0);
    const nodes = await db.pool.query<{ node: string }>(`SELECT DISTINCT node FROM "${ns}".tenant_usage WHERE tenant = $1`, [TENANT]);
    assert.deepEqual(nodes.rows.map((r) => r.node).sort(), [`${ns}-a`, `${ns}-b`]);
    alice.close();
    bob.close();
  });

  it("a node restarted within an interval reports both processes' counts of it, each once", async () => {
    const id = `${ns}-b`;
    const before = await usage();
    // Restart early in an interval, so the successor starts in the same one.
    await waitFor(() => Date.now() % INTERVAL > 50 && Date.now() % INTERVAL < 400, {
      timeoutMs: INTERVAL * 2,
      intervalMs: 5,
      what: 'the start of an interval',
    });
    const interval = Math.floor(Date.now() / INTERVAL) * INTERVAL;
    const carol = await connect(portB, 'carol');
    assert.equal((await carol.request({ op: 'join', room: 'r2' })).op, 'joined');
    assert.equal((await carol.request({ op: 'publish', room: 'r2', class: 'chat', data: 'before the restart' })).op, 'ack');
    const stoppedIncarnation = nodeB.tenancy.meter.incarnation;
    await nodeB.stop();
    nodeB = node(id);
    portB = (await nodeB.start()).port;
    assert.equal(nodeB.tenancy.meter.snapshot().from, interval, 'the successor started in the same interval (the machine was too slow for this test)');
    const dave = await connect(portB, 'dave');
    assert.equal((await dave.request({ op: 'join', room: 'r3' })).op, 'joined');
    for (let i = 0; i < 3; i += 1) assert.equal((await dave.request({ op: 'publish', room: 'r3', class: 'chat', data: { i } })).op, 'ack');
    assert.equal(nodeB.tenancy.meter.snapshot().from, interval, 'the publishes fell in the same interval');
    const successorIncarnation = nodeB.tenancy.meter.incarnation;
    const stoppedId = usageEventId(id, stoppedIncarnation, TENANT, interval);
    const successorId = usageEventId(id, successorIncarnation, TENANT, interval);
    assert.notEqual(stoppedId, successorId);
    // The stopped process reported its part when it stopped; the successor reports its own at the end of the interval, under its own id.
    await waitFor(() => handled.includes(stoppedId) && handled.includes(successorId), {
      timeoutMs: 15_000,
      intervalMs: 100,
      what: "both processes' reports of the interval",
    });
    const rowOf = async () =>
      (await db.pool.query<{ messages: string }>(`SELECT messages FROM "${ns}".tenant_usage WHERE node = $1 AND interval_start = $2`, [id, interval])).rows;
    const rows = await rowOf();
    assert.equal(rows.length, 1, 'one row for the interval');
    // Carol's message (reported by the stopped process) and dave's 3 (by the successor), nothing doubled.
    assert.equal(Number(rows[0]!.messages), 4);
    const claimed = await db.pool.query(`SELECT 1 FROM "${ns}".processed_events WHERE event_id = $1`, [successorId]);
    assert.equal(claimed.rowCount, 1, "the successor's report was applied under its own id");
    const afterRestart = await usage();
    assert.equal(afterRestart.messages, before.messages! + 4);

    // The successor's report delivered again (same id): applied once only.
    await workerLog.publish(
      usageReported(
        { tenant: TENANT, node: id, id: successorId, ts: interval + INTERVAL },
        { from: interval, to: interval + INTERVAL, connectionMs: 0, messages: 3, deliveries: 0, signals: 0, storedBytes: 0 },
      ),
    );
    await waitFor(() => handled.filter((handledId) => handledId === successorId).length === 2, { timeoutMs: 10_000, what: 'the repeat handled' });
    assert.equal(Number((await rowOf())[0]!.messages), 4, 'a re-delivered report is not added again');
  });
});

describe('live usage summed over 2 nodes', { skip, timeout: 60_000 }, () => {
  const ns = testNamespace('usagelive');
  // Long enough that the test's counts stay in one interval (the test starts early in one).
  const LIVE_INTERVAL = 30_000;
  const clients: RawClient[] = [];
  let nodeC: NerveNode;
  let nodeD: NerveNode | undefined;
  let httpC: string;
  let httpD: string;

  function node(id: string): NerveNode {
    return new NerveNode({
      port: 0,
      host: '127.0.0.1',
      nodeId: id,
      env: ns,
      defaultTenant: TENANT,
      redisUrl: SHARED_REDIS_URL,
      apiKey: API_KEY,
      usageIntervalMs: LIVE_INTERVAL,
      drainWindowMs: 0,
      logLevel: 'silent',
      demo: false,
    });
  }

  async function get(base: string, path: string): Promise<Record<string, unknown>> {
    const response = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(response.status, 200);
    return (await response.json()) as Record<string, unknown>;
  }

  before(async () => {
    nodeC = node(`${ns}-c`);
    nodeD = node(`${ns}-d`);
    httpC = `http://127.0.0.1:${(await nodeC.start()).port}`;
    httpD = `http://127.0.0.1:${(await nodeD.start()).port}`;
  });

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all([nodeC?.stop(), nodeD?.stop()]);
    await deleteNamespaceKeys(SHARED_REDIS_URL, ns);
  });

  it("GET /api/usage/live and the admin usage sum every node's current interval", async () => {
    await waitFor(() => Date.now() % LIVE_INTERVAL < LIVE_INTERVAL - 15_000, { timeoutMs: LIVE_INTERVAL, intervalMs: 50, what: 'an interval with 15 s left' });
    const interval = Math.floor(Date.now() / LIVE_INTERVAL) * LIVE_INTERVAL;
    const alice = await RawClient.connect(`ws://127.0.0.1:${new URL(httpC).port}/ws`, 'alice');
    const bob = await RawClient.connect(`ws://127.0.0.1:${new URL(httpD).port}/ws`, 'bob');
    clients.push(alice, bob);
    assert.equal((await alice.request({ op: 'join', room: 'live' })).op, 'joined');
    assert.equal((await bob.request({ op: 'join', room: 'live' })).op, 'joined');
    for (let i = 0; i < 2; i += 1) assert.equal((await alice.request({ op: 'publish', room: 'live', class: 'chat', data: { i } })).op, 'ack');
    for (let i = 0; i < 3; i += 1) assert.equal((await bob.request({ op: 'publish', room: 'live', class: 'chat', data: { i } })).op, 'ack');
    assert.equal((await bob.request({ op: 'signal', to: 'alice', kind: 'offer', data: { sdp: 'x' } })).op, 'ack');
    // Each node writes its counts every 2 s (a quarter of shorter intervals): the answering node's own are always current.
    const live = await waitFor(
      async () => {
        const answer = await get(httpC, `/api/usage/live?tenant=${TENANT}`);
        return answer.messages === 5 && answer.signals === 1 ? answer : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: "both nodes' counts in the live answer" },
    );
    assert.equal(live.from, interval);
    assert.equal(live.node, `${ns}-c`);
    assert.deepEqual(live.nodes, [`${ns}-c`, `${ns}-d`]);
    assert.equal(live.partial, false);
    assert.equal(live.connections, 2);
    assert.ok((live.deliveries as number) >= 11, `deliveries ${String(live.deliveries)}`);
    const admin = await waitFor(
      async () => {
        const answer = (await get(httpD, `/api/admin/tenants/${TENANT}/usage`)).live as Record<string, unknown>;
        return answer.messages === 5 ? answer : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: 'the admin live usage of both nodes' },
    );
    assert.equal(admin.node, `${ns}-d`);
    assert.deepEqual(admin.nodes, [`${ns}-d`, `${ns}-c`]);
    assert.equal(admin.connections, 2);
    // A node that stops takes its entry away (its counts go into its usage.reported events).
    bob.close();
    await nodeD!.stop();
    nodeD = undefined;
    const alone = await get(httpC, `/api/usage/live?tenant=${TENANT}`);
    assert.deepEqual(alone.nodes, [`${ns}-c`]);
    assert.equal(alone.messages, 2);
  });
});
