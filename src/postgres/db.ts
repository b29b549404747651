/**
 * PostgreSQL plumbing shared by the workers: schema names, transactions, the
 * migration runner, and "apply this event once" bookkeeping.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type pg from 'pg';
import { ConfigError } from '../config/errors.js';

const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

/** Schema names are plain lower-case identifiers, so quoting them is enough to use them in SQL. */
export function checkSchema(schema: string): string {
  if (!SCHEMA.test(schema)) throw new ConfigError('schema', 'a lower-case identifier: a-z 0-9 _, not starting with a digit, at most 63', schema);
  return schema;
}

export function quoteIdent(name: string): string {
  return `"${checkSchema(name)}"`;
}

/**
 * Run `fn` in a transaction; commit if it resolves, roll back if it throws.
 *
 * While a client is checked out the pool no longer listens to it, so a
 * connection lost between two queries (a PostgreSQL restart, a reset from
 * the network) emits `error` on the client with no listener, which crashes
 * the process (seen in the chaos soak). The listener here keeps the error:
 * the next query fails instead, the transaction rolls back and throws, and
 * the broken client is destroyed rather than returned to the pool.
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
  const result = await client.query(
    `INSERT INTO ${quoteIdent(schema)}.processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
    [consumer, eventId],
  );
  return result.rowCount === 1;
}

/** migrations/ at the package root, from src/workers (tsx) or dist/src/workers (built). */
export function migrationsDirectory(): string {
  for (const relative of ['../../migrations/', '../../../migrations/']) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  throw new Error('migrations directory not found next to the package');
}

/**
 * Apply every `migrations/NNN_name.sql` not yet recorded in
 * `{schema}.nerve_migrations`, in name order, in one transaction, under an
 * advisory lock so workers starting together do not race. The SQL files use
 * unqualified names; `search_path` points them at `schema`.
 * Returns the names applied now.
 */
export async function applyMigrations(pool: pg.Pool, schema: string, logger?: Logger, directory = migrationsDirectory()): Promise<string[]> {
  const ident = quoteIdent(schema);
  const files = (await readdir(directory)).filter((f) => /^\d+_[a-z0-9_]+\.sql$/.test(f)).sort();
  return withTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`nerve-migrations:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident}`);
    await client.query(`SET LOCAL search_path TO ${ident}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${ident}.nerve_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query<{ name: string }>(`SELECT name FROM ${ident}.nerve_migrations`)).rows.map((r) => r.name));
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      await client.query(await readFile(`${directory}${file}`, 'utf8'));
      await client.query(`INSERT INTO ${ident}.nerve_migrations (name) VALUES ($1)`, [file]);
      applied.push(file);
    }
    if (applied.length > 0) logger?.info({ schema, applied }, 'migrations applied');
    return applied;
  });
}
