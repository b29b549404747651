/**
 * Issue 14, "Detect" beyond Redis: a PostgreSQL pool and the RabbitMQ lanes
 * behind a TCP proxy that holds every byte (a partition). The PostgreSQL
 * probe notices within 2 probe intervals and recovers once bytes pass; the
 * cold lane reports an event the broker has not confirmed in time; the
 * RabbitMQ bus answers a publish never confirmed as an unknown outcome (it
 * was sent) and says so in its health until a publish is confirmed again.
 * Shared PostgreSQL / RabbitMQ are never faulted: only the proxy is.
 *
 * A service missing: fails in CI (CI=true), skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { Connection } from 'rabbitmq-client';
import { RabbitBus } from '../../src/bus/rabbitmq.js';
import { ChannelNamer } from '../../src/bus/channels.js';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { OutcomeUnknownError } from '../../src/lane-errors.js';
import { PostgresProbe } from '../../src/postgres/probe.js';
import { sampleEvent } from '../conformance/event-log.js';
import { serviceSkip, startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';
import { deleteTopology } from '../helpers/rabbitmq.js';

const pgSkip = (await serviceSkip('PostgreSQL', 5432)) ?? false;
const amqpSkip = (await serviceSkip('RabbitMQ', 5672)) ?? false;

const proxies: TcpProxy[] = [];
/** The RabbitMQ tests' namespaces: their exchanges are deleted at the end, so nothing stays on the shared broker. */
const namespaces: string[] = [];
after(async () => {
  await Promise.allSettled(proxies.map((proxy) => proxy.close()));
  if (namespaces.length === 0) return;
  const admin = new Connection({ url: 'amqp://guest:guest@127.0.0.1:5672', retryLow: 50 });
  admin.on('error', () => undefined);
  for (const env of namespaces) await deleteTopology(admin, `${env}.`, { exchanges: [`${env}.nerve.events`, `${env}.nerve.hot`] });
  await admin.close();
});

async function proxy(port: number): Promise<TcpProxy> {
  const started = await startTcpProxy(port);
  proxies.push(started);
  return started;
}

describe('PostgreSQL pool probe', { skip: pgSkip, timeout: 30_000 }, () => {
  it('notices held bytes within 2 probe intervals and recovers when they pass', async () => {
    const front = await proxy(5432);
    const pool = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${front.port}/test`, max: 2, connectionTimeoutMillis: 5000 });
    pool.on('error', () => {});
    const intervalMs = 300;
    const probe = new PostgresProbe(pool, intervalMs);
    try {
      probe.start();
      assert.equal(await probe.probe(), true);
      assert.equal(probe.health().ok, true);
      // "Within 2 intervals" counted in probe rounds, not wall time: on a loaded machine the
      // rounds themselves run late, and that is the scheduler's delay, not the probe's.
      let probesSinceHold = 0;
      const probeOnce = probe.probe.bind(probe);
      probe.probe = () => {
        probesSinceHold += 1;
        return probeOnce();
      };
      front.hold();
      await waitFor(() => !probe.health().ok, { timeoutMs: 15_000, intervalMs: 10, what: 'postgres probe failure' });
      assert.ok(probesSinceHold <= 2, `noticed at probe ${probesSinceHold} after the hold`);
      assert.match(probe.health().detail ?? '', /^SELECT 1 failed/);
      assert.equal(probe.health().lane, 'postgres');
      front.pass();
      await waitFor(() => probe.health().ok, { timeoutMs: 5000, intervalMs: 10, what: 'postgres probe back' });
      const [stats] = probe.linkStats();
      assert.ok(stats && stats.probeFailures >= 1 && stats.reconnects >= 1, JSON.stringify(stats));
    } finally {
      probe.stop();
      front.pass();
      await pool.end();
    }
  });
});

describe('RabbitMQ lanes behind held bytes', { skip: amqpSkip, timeout: 40_000 }, () => {
  it('the cold lane reports an event the broker has not confirmed in time, then recovers', async () => {
    const front = await proxy(5672);
    const env = testNamespace('probe');
    namespaces.push(env);
    const log = new RabbitEventLog({
      url: `amqp://guest:guest@127.0.0.1:${front.port}`,
      env,
      confirmOverdueMs: 300,
      reconnectLowMs: 50,
      reconnectHighMs: 500,
    });
    try {
      await log.start();
      await log.publish(sampleEvent('room.created'));
      assert.equal(log.health().ok, true);
      front.hold();
      const pending = log.publish(sampleEvent('room.created'));
      await waitFor(() => !log.health().ok, { timeoutMs: 3000, intervalMs: 20, what: 'events lane unhealthy' });
      assert.match(log.health().detail ?? '', /broker has not confirmed an event for \d+ ms/);
      front.pass();
      await pending;
      await waitFor(() => log.health().ok, { timeoutMs: 5000, intervalMs: 20, what: 'events lane healthy again' });
    } finally {
      front.pass();
      await log.close();
    }
  });

  it('the bus answers a publish without confirm as an unknown outcome and reports it until one is confirmed', async () => {
    const front = await proxy(5672);
    const env = testNamespace('probe');
    namespaces.push(env);
    const bus = new RabbitBus({
      url: `amqp://guest:guest@127.0.0.1:${front.port}`,
      env,
      nodeId: `n-${randomUUID().slice(0, 8)}`,
      publishTimeoutMs: 300,
      canaryIntervalMs: 0,
      reconnectLowMs: 20,
      reconnectHighMs: 200,
    });
    const channel = new ChannelNamer({ env, service: 'nerve' }).room('t', 'r');
    const envelope = () => ({ v: 1, type: 'deliver' as const, id: randomUUID(), origin: 'x', class: 'ephemeral' as const, payload: 'p' });
    try {
      await bus.start(() => {});
      await bus.publish(channel, envelope());
      assert.equal(bus.health().ok, true);
      front.hold();
      await assert.rejects(bus.publish(channel, envelope()), (error: unknown) => error instanceof OutcomeUnknownError && error.code === 'outcome_unknown');
      assert.equal(bus.health().ok, false);
      assert.match(bus.health().detail ?? '', /publisher: no confirm within 300 ms/);
      front.pass();
      await waitFor(
        async () => {
          await bus.publish(channel, envelope());
          return bus.health().ok;
        },
        { timeoutMs: 5000, intervalMs: 50, what: 'bus healthy after a confirmed publish' },
      );
    } finally {
      front.pass();
      await bus.close();
    }
  });
});
