/**
 * billing's call rows on a real database: one `call_usage` row per life of
 * a call from its call.ended, a redelivered event (same id) or a second
 * event for the same call life applied once. The lane is in memory: the
 * lane's own faults are workers-billing.test.ts's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { callEnded } from '../../src/events/events.js';
import { MemoryEventLog } from '../../src/events/memory.js';
import { runWorker, type WorkerHandle } from '../../src/workers/runner.js';
import { createTestDatabase, postgresSkip, type TestDatabase } from '../helpers/postgres.js';
import { testNamespace, waitFor } from '../helpers/wait.js';

const skip = (await postgresSkip()) ?? false;

describe('billing worker: calls', { skip }, () => {
  const ns = testNamespace('billc');
  const log = new MemoryEventLog();
  let db: TestDatabase;
  let worker: WorkerHandle;

  before(async () => {
    db = await createTestDatabase(ns);
    await log.start();
    worker = await runWorker('billing', { eventLog: log, pool: db.pool, schema: ns, logger: pino({ level: 'silent' }) });
  });
  after(async () => {
    await worker?.close();
    await log.close();
    await db?.drop();
  });

  it('writes one call_usage row per call life, with participant-minutes', async () => {
    const source = { tenant: 'acme', room: 'support-42', session: 'ses-1', node: 'n1' };
    const data = (callSession: string) => ({
      call: 'p2p-0011223344556677',
      callSession,
      startedAt: 1_718_000_000_000,
      endedAt: 1_718_000_600_000,
      ms: 600_000,
      participants: [
        { user: 'alice', ms: 600_000 },
        { user: 'bob', ms: 540_000 },
      ],
      peakParticipants: 2,
      reason: 'left' as const,
    });
    const first = callEnded({ ...source, id: 'cs-1.ended' }, data('cs-1'));
    await log.publish(first);
    await log.publish(first); // redelivered: the same id
    await log.publish(callEnded({ ...source, id: 'cs-1.ended-again' }, data('cs-1'))); // another event of the same life
    await log.publish(callEnded({ ...source, id: 'cs-2.ended' }, data('cs-2')));
    const rows = async () =>
      (
        await db.pool.query<{
          call_session: string;
          participants: number;
          participant_ms: string;
          participant_minutes: string;
          duration_ms: string;
          event_id: string;
        }>(`SELECT call_session, participants, participant_ms, participant_minutes, duration_ms, event_id FROM "${ns}".call_usage ORDER BY call_session`)
      ).rows;
    await waitFor(async () => (await rows()).length === 2 && (await db.pool.query(`SELECT 1 FROM "${ns}".processed_events`)).rowCount === 3, {
      timeoutMs: 10_000,
      what: 'the call rows',
    });
    const [one, two] = await rows();
    // Handled concurrently (prefetch): whichever of the two events of cs-1 came first keeps the bill.
    assert.ok(['cs-1.ended', 'cs-1.ended-again'].includes(one?.event_id ?? ''), one?.event_id);
    assert.deepEqual(
      { ...one, event_id: undefined },
      { call_session: 'cs-1', participants: 2, participant_ms: '1140000', participant_minutes: '19.000', duration_ms: '600000', event_id: undefined },
    );
    assert.equal(two?.call_session, 'cs-2');
  });
});
