/**
 * billing on the real lane and database: 10,000 room.ended events published
 * while the broker connections are cut twice (through a TCP proxy; the
 * shared broker is never touched) → exactly 10,000 usage rows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Connection } from 'rabbitmq-client';
import { roomEnded } from '../../src/events/events.js';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { runWorker } from '../../src/workers/runner.js';
import { pino } from 'pino';
import { createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { AMQP_URL, serviceSkip, startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await serviceSkip('RabbitMQ', 5672)) ?? (await postgresSkip());
const TOTAL = 10_000;

describe('billing worker', { skip }, () => {
  const ns = testNamespace('bill');
  let admin: Connection;
  let db: TestDatabase;
  let proxy: TcpProxy;

  before(async () => {
    admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
    db = await createTestDatabase(ns);
    proxy = await startTcpProxy(5672);
  });
  after(async () => {
    for (const queue of ['billing', 'billing.dlq', ...[1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000].map((d) => `billing.retry.${d}`)]) {
      await admin.queueDelete({ queue: `${ns}.nerve.${queue}` }).catch(() => undefined);
    }
    await admin.exchangeDelete({ exchange: `${ns}.nerve.events` }).catch(() => undefined);
    await admin.close();
    await proxy.close();
    await db.drop();
  });

  it(`bills ${TOTAL} room.ended events exactly once while the broker connection is cut twice`, { timeout: 120_000 }, async () => {
    const url = `amqp://guest:guest@127.0.0.1:${proxy.port}`;
    const logOptions = { url, env: ns, logger: pino({ level: process.env.TEST_LOG ?? 'silent' }), reconnectLowMs: 50, reconnectHighMs: 300 };
    const publisherLog = new RabbitEventLog(logOptions);
    const consumerLog = new RabbitEventLog(logOptions);
    await publisherLog.start();
    await consumerLog.start();
    const worker = await runWorker('billing', {
      eventLog: consumerLog,
      pool: db.pool,
      schema: ns,
      prefetch: 64,
      retryDelayMs: 1000,
      logger: pino({ level: process.env.TEST_LOG ?? 'silent' }),
    });
    try {
      const t0 = Date.now();
      const batch = 500;
      let cuts = 0;
      for (let start = 0; start < TOTAL; start += batch) {
        const publishes: Array<Promise<void>> = [];
        for (let i = start; i < start + batch; i++) {
          const room = `room${i}`;
          publishes.push(
            publisherLog.publish(
              roomEnded(
                { tenant: 'acme', room, session: `sess${i}`, node: 'n1' },
                {
                  startedAt: 1000,
                  durationMs: 120_000,
                  participants: [
                    { user: 'alice', ms: 120_000 },
                    { user: 'bob', ms: 60_000 },
                  ],
                },
              ),
            ),
          );
          // Cut while a batch is in flight: unconfirmed publishes and unacked deliveries are both in the air.
          if ((i === 3000 || i === 7000) && proxy.cut() > 0) cuts++;
        }
        await Promise.all(publishes); // every publish confirmed: none rejected, none dropped
      }
      assert.equal(cuts, 2, 'both cuts hit live connections');
      if (process.env.TEST_LOG) process.stderr.write(`published at ${Date.now() - t0} ms\n`);
      assert.equal(publisherLog.outboxDepth(), 0);
      const count = async () => Number((await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${ns}".usage`)).rows[0]!.n);
      await waitFor(async () => (await count()) === TOTAL, { timeoutMs: 60_000, intervalMs: 250, what: `${TOTAL} usage rows` });
      if (process.env.TEST_LOG) process.stderr.write(`stored at ${Date.now() - t0} ms\n`);
      // Drained: nothing more is coming that could add a duplicate.
      await waitFor(async () => (await admin.queueDeclare({ queue: `${ns}.nerve.billing`, passive: true })).messageCount === 0, {
        timeoutMs: 30_000,
        what: 'billing queue drained',
      });
      const rows = await db.pool.query<{ n: string; sessions: string; minutes: string }>(
        `SELECT count(*) AS n, count(DISTINCT session) AS sessions, sum(participant_minutes) AS minutes FROM "${ns}".usage`,
      );
      assert.equal(Number(rows.rows[0]!.n), TOTAL, '0 lost, 0 duplicated');
      assert.equal(Number(rows.rows[0]!.sessions), TOTAL);
      assert.equal(Number(rows.rows[0]!.minutes), TOTAL * 3, 'participant-minutes: 2 + 1 per session');
      const processed = await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${ns}".processed_events WHERE consumer = 'billing'`);
      assert.equal(Number(processed.rows[0]!.n), TOTAL);
      const dlq = await admin.queueDeclare({ queue: `${ns}.nerve.billing.dlq`, passive: true });
      assert.equal(dlq.messageCount, 0);
    } finally {
      await worker.close();
      await consumerLog.close();
      await publisherLog.close();
    }
  });
});
