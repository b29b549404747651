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

/** One room of a user's unread summary (`GET /api/users/:user/unread`). */
export interface UnreadRoom {
  room: string;
  epoch: string;
  /** The user's read position. */
  read: number;
  /** Archived chat messages after it, not the user's, not edit/delete/react entries; at most 100. */
  unread: number;
}

/**
 * The rooms `user` has a read position in (by room id, at most `limit`),
 * each with its unread count from the archive (`chat_messages`, written by
 * the chat-store worker): the protocol's unread rule, over stored messages.
 */
export async function readUnread(pool: pg.Pool, schema: string, tenant: string, user: string, limit: number): Promise<UnreadRoom[]> {
  const ident = quoteIdent(schema);
  const { rows } = await pool.query<{ room: string; epoch: string; read_offset: string; unread: number }>(
    `SELECT r.room, r.epoch, r.read_offset,
       (SELECT count(*) FROM (SELECT 1 FROM ${ident}.chat_messages m
          WHERE m.tenant = r.tenant AND m.room = r.room AND m.epoch = r.epoch AND m.room_offset > r.read_offset
            AND m.action IS NULL AND m.sender <> r.user_id LIMIT 100) counted)::int AS unread
     FROM ${ident}.read_positions r WHERE r.tenant = $1 AND r.user_id = $2 ORDER BY r.room LIMIT $3`,
    [tenant, user, limit],
  );
  return rows.map((row) => ({ room: row.room, epoch: row.epoch, read: Number(row.read_offset), unread: row.unread }));
}
