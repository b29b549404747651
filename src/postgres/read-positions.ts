/**
 * The writers of `read_positions` (migration 007) and the one rule they
 * share (`readPositionUpsert`): the gateway's `advance` with the PostgreSQL
 * read position driver (src/receipts/postgres.ts), and the chat-store worker
 * recording each `read.updated`. Events of one user and room may arrive out
 * of order (retries, two nodes), so the row only moves forward: a higher
 * offset of the same epoch, or a write of another epoch stamped later than
 * the row. Epochs are random, so only the stamp tells an older epoch from a
 * newer one.
 */
import type pg from 'pg';
import { quoteIdent } from './db.js';

export interface ReadPositionUpsertOptions {
  /**
   * The writer has checked that the epoch is the room log's current one (the
   * gateway's `advance`): a row of another epoch is older and is replaced
   * whatever the stamps, and the row's stamp becomes at least 1 ms later than
   * it was, so a node whose clock is behind another's still moves the row to
   * a new epoch, and an older event of the old epoch cannot move it back later.
   */
  current?: boolean;
  /** Add `RETURNING user_id, epoch, read_offset`: a row only when this write moved the position. */
  returning?: boolean;
}

/**
 * The forward-only upsert of `read_positions`. Parameters: $1 tenant, $2
 * room, $3 user, $4 epoch, $5 offset, $6 stamp (ms since epoch). A row moves
 * when the write is of its epoch with a higher offset, or of another epoch
 * with a later stamp; anything else (a repeat, a lower offset, an older
 * event of another epoch) changes nothing. The row's stamp never goes back:
 * a forward move stamped earlier (a node whose clock is behind) keeps the
 * later one, so an older event of another epoch cannot win after it.
 */
export function readPositionUpsert(schema: string, options: ReadPositionUpsertOptions = {}): string {
  const table = `${quoteIdent(schema)}.read_positions`;
  // Decided on the locked row, in DO UPDATE: a stamp read in a subquery could
  // be older than the row a concurrent write commits before this one locks it.
  const moves = options.current
    ? '(r.epoch = EXCLUDED.epoch AND r.read_offset < EXCLUDED.read_offset) OR r.epoch <> EXCLUDED.epoch'
    : '(r.epoch = EXCLUDED.epoch AND r.read_offset < EXCLUDED.read_offset) OR (r.epoch <> EXCLUDED.epoch AND r.updated_at < EXCLUDED.updated_at)';
  const stamp = options.current ? 'GREATEST(r.updated_at + 1, EXCLUDED.updated_at)' : 'GREATEST(r.updated_at, EXCLUDED.updated_at)';
  return `INSERT INTO ${table} AS r (tenant, room, user_id, epoch, read_offset, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (tenant, room, user_id) DO UPDATE SET epoch = EXCLUDED.epoch, read_offset = EXCLUDED.read_offset, updated_at = ${stamp}
    WHERE ${moves}${options.returning ? '\n    RETURNING user_id, epoch, read_offset' : ''}`;
}

export interface ReadPositionRow {
  tenant: string;
  room: string;
  user: string;
  epoch: string;
  offset: number;
  /** The event's ts, ms since epoch. */
  at: number;
}

/**
 * The chat-store worker's writer, from `read.updated`. With Redis read
 * positions this is the only write to PostgreSQL (the durable copy). With
 * the PostgreSQL driver the gateway has already written the same position by
 * the same rule, so this write normally changes nothing; it stays, because
 * the worker cannot tell which driver the nodes run and a skipped write would
 * lose the durable copy of a Redis cluster.
 */
export class ReadPositionTable {
  private readonly upsert: string;

  constructor(schema: string) {
    this.upsert = readPositionUpsert(schema);
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
