/** Reading `tenant_usage` (written by the usage worker, src/workers/usage.ts) for `GET /api/usage` and the admin page. */
import type pg from 'pg';
import { quoteIdent } from './db.js';

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
