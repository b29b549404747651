/**
 * The one writer of `read_positions` (migration 007): the chat-store worker
 * records each `read.updated`. Events of one user and room may arrive out of
 * order (retries, two nodes), so the row only moves forward: a higher offset
 * of the same epoch, or a newer event (by its ts) of another epoch.
 */
import type pg from 'pg';
import { quoteIdent } from './db.js';

export interface ReadPositionRow {
  tenant: string;
  room: string;
  user: string;
  epoch: string;
  offset: number;
  /** The event's ts, ms since epoch. */
  at: number;
}

export class ReadPositionTable {
  private readonly upsert: string;

  constructor(schema: string) {
    const table = `${quoteIdent(schema)}.read_positions`;
    this.upsert = `INSERT INTO ${table} AS r (tenant, room, user_id, epoch, read_offset, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
      ON CONFLICT (tenant, room, user_id) DO UPDATE SET epoch = EXCLUDED.epoch, read_offset = EXCLUDED.read_offset, updated_at = EXCLUDED.updated_at
      WHERE (r.epoch = EXCLUDED.epoch AND r.read_offset < EXCLUDED.read_offset) OR (r.epoch <> EXCLUDED.epoch AND r.updated_at < EXCLUDED.updated_at)`;
  }

  /** Record a position; idempotent (a repeat or an older one changes nothing). */
  async record(pool: pg.Pool | pg.PoolClient, row: ReadPositionRow): Promise<void> {
    await pool.query(this.upsert, [row.tenant, row.room, row.user, row.epoch, row.offset, row.at]);
  }
}
