/**
 * analytics: running per-room aggregates in `room_stats` (messages, sessions,
 * current and peak participants, durations). Each event is applied once
 * (processed_events in the same transaction).
 */
import type { LifecycleEvent } from '../events/event-log.js';
import { eventData } from '../events/events.js';
import { claimEvent, quoteIdent, withTransaction } from '../postgres/db.js';
import { requirePool, type WorkerDefinition } from './worker.js';

function update(event: LifecycleEvent): { set: string; params: unknown[] } {
  switch (event.type) {
    case 'room.created':
      return { set: 'sessions = s.sessions + 1', params: [] };
    case 'message.created':
      return { set: 'messages = s.messages + 1', params: [] };
    case 'participant.joined':
      return {
        set: 'current_participants = s.current_participants + 1, peak_participants = GREATEST(s.peak_participants, s.current_participants + 1)',
        params: [],
      };
    case 'participant.left':
      // Out-of-order delivery may bring a leave before its join: never below zero.
      return { set: 'current_participants = GREATEST(s.current_participants - 1, 0)', params: [] };
    case 'room.ended': {
      const data = eventData(event, 'room.ended');
      return {
        set: 'current_participants = 0, peak_participants = GREATEST(s.peak_participants, $3::int), total_duration_ms = s.total_duration_ms + $4::bigint, last_duration_ms = $4::bigint, last_ended_at = $5::bigint',
        params: [data.peakParticipants ?? data.participants.length, data.durationMs, event.ts],
      };
    }
    case 'recording.requested':
    case 'call.started':
    case 'call.ended':
    case 'read.updated':
    case 'usage.reported':
    case 'pusher.webhook':
    case 'admin.disconnect':
    case 'admin.end_room':
    case 'admin.publish':
    case 'admin.set_quotas':
      return { set: '', params: [] };
  }
}

export const analytics: WorkerDefinition = {
  name: 'analytics',
  needsPostgres: true,
  defaults: { maxAttempts: 5, retryDelayMs: 1000, retryBackoff: 'exponential' },
  consumers(context) {
    const pool = requirePool(context);
    const schema = context.schema;
    const table = `${quoteIdent(schema)}.room_stats`;
    return [
      {
        spec: { queue: 'analytics', bindings: ['room.*', 'participant.*', 'message.created'] },
        async handler(event) {
          const { set, params } = update(event);
          if (set === '' || event.room === undefined) return 'ack';
          await withTransaction(pool, async (client) => {
            if (!(await claimEvent(client, schema, 'analytics', event.id))) return;
            await client.query(`INSERT INTO ${table} AS s (tenant, room) VALUES ($1, $2) ON CONFLICT (tenant, room) DO NOTHING`, [event.tenant, event.room]);
            await client.query(`UPDATE ${table} AS s SET ${set}, updated_at = now() WHERE s.tenant = $1 AND s.room = $2`, [
              event.tenant,
              event.room,
              ...params,
            ]);
          });
          context.hooks.afterCommit?.(event.id);
          return 'ack';
        },
      },
    ];
  },
};
