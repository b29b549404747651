/**
 * A billing worker process killed (SIGKILL) after its database commit and
 * before its ack: the broker redelivers the event to the next worker, and the
 * processed_events row makes the redelivery a no-op. No duplicate, no loss.
 * Uses the test hook NERVE_TEST_CRASH_AFTER_COMMIT=1 (src/workers/cli.ts).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Connection } from 'rabbitmq-client';
import { roomEnded } from '../../src/events/events.js';
import { RabbitEventLog } from '../../src/events/rabbitmq.js';
import { createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { AMQP_URL, serviceSkip } from '../helpers/tcp-proxy.js';
import { testNamespace, waitFor } from '../helpers/wait.js';
import { spawnWorker, type WorkerProcess } from '../helpers/worker-process.js';

const skip = (await serviceSkip('RabbitMQ', 5672)) ?? (await postgresSkip());

function spawnBilling(ns: string, db: TestDatabase, env: Record<string, string> = {}): WorkerProcess {
  return spawnWorker(['billing', '--amqp-url', AMQP_URL, '--postgres-url', db.url, '--postgres-schema', ns, '--env', ns, '--prefetch', '1'], env);
}

describe('worker crash between commit and ack', { skip }, () => {
  const ns = testNamespace('crash');
  let admin: Connection;
  let db: TestDatabase;
  const children: ChildProcess[] = [];

  before(async () => {
    admin = new Connection({ url: AMQP_URL, retryLow: 50 });
    admin.on('error', () => undefined);
    db = await createTestDatabase(ns);
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const queue of ['billing', 'billing.dlq', ...[1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000].map((d) => `billing.retry.${d}`)]) {
      await admin.queueDelete({ queue: `${ns}.nerve.${queue}` }).catch(() => undefined);
    }
    await admin.exchangeDelete({ exchange: `${ns}.nerve.events` }).catch(() => undefined);
    await admin.close();
    await db.drop();
  });

  it('redelivers to the next worker and stores no duplicate row', { timeout: 60_000 }, async () => {
    const ready = (w: WorkerProcess) => waitFor(() => w.logs.some((l) => l.msg === 'worker ready'), { timeoutMs: 20_000, what: 'worker ready' });
    const first = spawnBilling(ns, db, { NERVE_TEST_CRASH_AFTER_COMMIT: '1' });
    children.push(first.child);
    await ready(first);

    const log = new RabbitEventLog({ url: AMQP_URL, env: ns });
    await log.start();
    const event = roomEnded(
      { tenant: 'acme', room: 'crash', session: 'sess-crash', node: 'n1' },
      { startedAt: 0, durationMs: 60_000, participants: [{ user: 'alice', ms: 60_000 }] },
    );
    await log.publish(event);
    await log.close();

    const exit = await first.exited;
    assert.equal(exit.signal, 'SIGKILL', 'the hook killed the worker');
    const rows = async () => Number((await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${ns}".usage`)).rows[0]!.n);
    assert.equal(await rows(), 1, 'the effect was committed before the crash');
    const queue = `${ns}.nerve.billing`;
    // Unacked, so back in the queue once the broker noticed the dead connection.
    await waitFor(async () => (await admin.queueDeclare({ queue, passive: true })).messageCount === 1, { timeoutMs: 10_000, what: 'event back in the queue' });

    const second = spawnBilling(ns, db);
    children.push(second.child);
    await ready(second);
    await waitFor(async () => (await admin.queueDeclare({ queue, passive: true })).messageCount === 0, {
      timeoutMs: 15_000,
      what: 'redelivered event consumed',
    });
    // Consumed is not yet acked: stop gracefully (SIGTERM lets the in-flight event settle), then look.
    second.child.kill('SIGTERM');
    const stopped = await second.exited;
    assert.equal(stopped.code, 0, 'graceful stop exits 0');
    const after = await admin.queueDeclare({ queue, passive: true });
    assert.equal(after.messageCount, 0, 'acked, not requeued');
    assert.equal(await rows(), 1, 'no duplicate row');
    const processed = await db.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${ns}".processed_events WHERE event_id = $1`, [event.id]);
    assert.equal(Number(processed.rows[0]!.n), 1);
  });
});
