/**
 * billing: participant-minutes per room session, from room.ended, into
 * `usage`, and per call, from call.ended, into `call_usage`. Exactly once
 * per event id: the `processed_events` row and the usage row commit in one
 * transaction, and the event is acked only after.
 */
import type pg from 'pg';
import type { LifecycleEvent } from '../events/event-log.js';
import { eventData } from '../events/events.js';
import { claimEvent, quoteIdent, withTransaction } from '../postgres/db.js';
import { requirePool, type WorkerDefinition } from './worker.js';

export const billing: WorkerDefinition = {
  name: 'billing',
  needsPostgres: true,
  defaults: { maxAttempts: 10, retryDelayMs: 1000, retryBackoff: 'exponential' },
  consumers(context) {
    const pool = requirePool(context);
    const schema = context.schema;
    return [
      {
        spec: { queue: 'billing', bindings: ['room.ended', 'call.ended'] },
        async handler(event) {
          await withTransaction(pool, async (client) => {
            if (!(await claimEvent(client, schema, 'billing', event.id))) return;
            if (event.type === 'call.ended') await billCall(client, schema, event);
            else await billSession(client, schema, event);
          });
          context.hooks.afterCommit?.(event.id);
          return 'ack';
        },
      },
    ];
  },
};

async function billSession(client: pg.PoolClient, schema: string, event: LifecycleEvent): Promise<void> {
  const data = eventData(event, 'room.ended');
  const participantMs = data.participants.reduce((sum, p) => sum + p.ms, 0);
  // A second room.ended for the same session (another event id) keeps the first bill.
  await client.query(
    `INSERT INTO ${quoteIdent(schema)}.usage
       (tenant, room, session, event_id, started_at, ended_at, duration_ms, participants, participant_ms, participant_minutes)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::bigint, round($9::bigint / 60000.0, 3))
     ON CONFLICT (tenant, room, session) DO NOTHING`,
    [event.tenant, event.room, event.session, event.id, data.startedAt, event.ts, data.durationMs, data.participants.length, participantMs],
  );
}

async function billCall(client: pg.PoolClient, schema: string, event: LifecycleEvent): Promise<void> {
  const data = eventData(event, 'call.ended');
  const participantMs = data.participants.reduce((sum, p) => sum + p.ms, 0);
  await client.query(
    `INSERT INTO ${quoteIdent(schema)}.call_usage
       (tenant, room, session, call, call_session, event_id, started_at, ended_at, duration_ms, participants, participant_ms, participant_minutes)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::bigint, round($11::bigint / 60000.0, 3))
     ON CONFLICT (tenant, call_session) DO NOTHING`,
    [
      event.tenant,
      event.room,
      event.session,
      data.call,
      data.callSession,
      event.id,
      data.startedAt,
      data.endedAt,
      data.ms,
      data.participants.length,
      participantMs,
    ],
  );
}
