/**
 * PostgreSQL for tests: the shared local server, a schema per test run
 * (dropped afterwards, also on failure).
 */
import pg from 'pg';
import { serviceSkip } from './tcp-proxy.js';

export const POSTGRES_URL = process.env.NERVE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  pool: pg.Pool;
  schema: string;
  url: string;
  /** Drop the schema (cascade) and end the pool. Idempotent. */
  drop(): Promise<void>;
}

export function postgresSkip(): Promise<string | undefined> {
  return serviceSkip('PostgreSQL', 5432);
}

export async function createTestDatabase(schema: string): Promise<TestDatabase> {
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 16 });
  pool.on('error', () => undefined); // idle clients cut by the server must not crash the test process
  let dropping: Promise<void> | undefined;
  return {
    pool,
    schema,
    url: POSTGRES_URL,
    drop() {
      dropping ??= (async () => {
        try {
          await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        } finally {
          await pool.end();
        }
      })();
      return dropping;
    },
  };
}
