/**
 * PostgreSQL plumbing shared by the history lane and the workers: schema
 * names, transactions, and "apply this event once" bookkeeping.
 */
import type pg from 'pg';
import { pgIdentifier } from '../config/validate.js';

/** Schema names are plain lower-case identifiers (checked here again), so quoting them is enough to use them in SQL. */
export function quoteIdent(name: string): string {
  return `"${pgIdentifier('schema', name)}"`;
}

/**
 * Run `fn` in a transaction; commit if it resolves, roll back if it throws.
 * A checked-out client has no pool listener, so a connection lost between
 * two queries would emit an unheard `error` and crash the process (seen in
 * the chaos soak): the listener here keeps it, the next query fails, and the
 * broken client is destroyed rather than returned to the pool.
 */
export async function withTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (error: Error): void => {
    lost = error;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.off('error', onError);
    client.release(lost);
  }
}

/**
 * Mark `eventId` processed by `consumer` inside the caller's transaction.
 * False means it was already processed: skip the effect, commit, ack.
 */
export async function claimEvent(client: pg.PoolClient, schema: string, consumer: string, eventId: string): Promise<boolean> {
  const result = await client.query(`INSERT INTO ${quoteIdent(schema)}.processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [
    consumer,
    eventId,
  ]);
  return result.rowCount === 1;
}
