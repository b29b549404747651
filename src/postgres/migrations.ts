/**
 * The migration runner: migrations/NNN_name.sql, applied in name order in one
 * transaction under an advisory lock, recorded in `{schema}.nerve_migrations`.
 * Hand-written rather than postgrator or node-pg-migrate: README, "Dependencies".
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type pg from 'pg';
import { quoteIdent, withTransaction } from './db.js';

/** migrations/ at the package root, from src/postgres (tsx) or dist/src/postgres (built). */
function migrationsDirectory(): string {
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
