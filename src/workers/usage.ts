/**
 * usage: each node's `usage.reported` events into `tenant_usage`, one row
 * per tenant, node and interval. Exactly once per event id (the
 * `processed_events` row and the usage row change in one transaction): a
 * re-delivered report changes nothing. Reports of the same interval and
 * node under other ids (a restarted process's incarnation, each reporting
 * what it counted) are added into the row.
 */
import { eventData } from '../events/events.js';
import { claimEvent, quoteIdent, withTransaction } from '../postgres/db.js';
import { requirePool, type WorkerDefinition } from './worker.js';

export const usage: WorkerDefinition = {
  name: 'usage',
  needsPostgres: true,
  defaults: { maxAttempts: 10, retryDelayMs: 1000, retryBackoff: 'exponential' },
  consumers(context) {
    const pool = requirePool(context);
    const schema = context.schema;
    return [
      {
        spec: { queue: 'usage', bindings: ['usage.reported'] },
        async handler(event) {
          const data = eventData(event, 'usage.reported');
          await withTransaction(pool, async (client) => {
            if (!(await claimEvent(client, schema, 'usage', event.id))) return;
            await client.query(
              `INSERT INTO ${quoteIdent(schema)}.tenant_usage AS t
                 (tenant, node, interval_start, interval_end, event_id, connection_ms, messages, deliveries, signals, stored_bytes)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (tenant, node, interval_start) DO UPDATE SET
                 interval_end = greatest(t.interval_end, excluded.interval_end),
                 connection_ms = t.connection_ms + excluded.connection_ms,
                 messages = t.messages + excluded.messages,
                 deliveries = t.deliveries + excluded.deliveries,
                 signals = t.signals + excluded.signals,
                 stored_bytes = t.stored_bytes + excluded.stored_bytes`,
              [event.tenant, event.node, data.from, data.to, event.id, data.connectionMs, data.messages, data.deliveries, data.signals, data.storedBytes],
            );
          });
          context.hooks.afterCommit?.(event.id);
          return 'ack';
        },
      },
    ];
  },
};
