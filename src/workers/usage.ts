/**
 * usage: each node's `usage.reported` events into `tenant_usage`, one row
 * per tenant, node and interval. Exactly once per event id (the
 * `processed_events` row and the usage row change in one transaction): a
 * re-delivered report changes nothing. Reports of the same interval and
 * node under other ids (a restarted process's incarnation, each reporting
 * what it counted) are added into the row.
 */
import type pg from 'pg';
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

/** A tenant's usage summed over the intervals that start in [from, to). */
export interface UsageTotals {
  connectionMinutes: number;
  messages: number;
  deliveries: number;
  signals: number;
  storedBytes: number;
  /** Rows summed: one per node and interval. */
  reports: number;
}

export async function readUsage(pool: pg.Pool, schema: string, tenant: string, from: number, to: number): Promise<UsageTotals> {
  const result = await pool.query<{ connection_ms: string; messages: string; deliveries: string; signals: string; stored_bytes: string; reports: string }>(
    `SELECT coalesce(sum(connection_ms), 0) AS connection_ms, coalesce(sum(messages), 0) AS messages,
            coalesce(sum(deliveries), 0) AS deliveries, coalesce(sum(signals), 0) AS signals,
            coalesce(sum(stored_bytes), 0) AS stored_bytes, count(*) AS reports
       FROM ${quoteIdent(schema)}.tenant_usage
      WHERE tenant = $1 AND interval_start >= $2 AND interval_start < $3`,
    [tenant, from, to],
  );
  const row = result.rows[0]!;
  return {
    connectionMinutes: Math.round((Number(row.connection_ms) / 60_000) * 1000) / 1000,
    messages: Number(row.messages),
    deliveries: Number(row.deliveries),
    signals: Number(row.signals),
    storedBytes: Number(row.stored_bytes),
    reports: Number(row.reports),
  };
}
