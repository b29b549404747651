/**
 * Read positions in PostgreSQL's `read_positions` (migration 007), for a
 * cluster without Redis (`--bus rabbitmq`): every node reads and writes the
 * one table, and `advance` is one upsert that moves a row only forward, so
 * it is atomic across nodes. The chat-store worker writes the same rows
 * again from `read.updated`; both writes are `readPositionUpsert`
 * (src/postgres/read-positions.ts), one rule, so the worker's repeat of a
 * position changes nothing and an older event cannot move a row back.
 */
import type pg from 'pg';
import { errorText } from '../errors.js';
import type { RoomRef } from '../history/history.js';
import type { LaneHealth } from '../lanes.js';
import { quoteIdent } from '../postgres/db.js';
import { applyMigrations } from '../postgres/migrations.js';
import { readPositionUpsert } from '../postgres/read-positions.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { StreamPosition } from '../../packages/protocol/src/frames.js';
import type { AdvanceResult, ReadPositions, ReadSnapshot } from './receipts.js';

export interface PostgresReadPositionsOptions {
  /** Pool owned by the caller (not ended by `close`). Required. */
  pool: pg.Pool;
  /** Schema holding the tables; migrated on `open`. Default `nerve`. */
  schema?: string;
  /** Apply migrations on `open`. Default true. */
  migrate?: boolean;
}

interface Row {
  user_id: string;
  epoch: string;
  read_offset: string;
}

export class PostgresReadPositions implements ReadPositions {
  readonly driver = 'postgres';
  private readonly pool: pg.Pool;
  private readonly schema: string;
  private readonly migrate: boolean;
  private readonly sql: { advance: string; one: string; list: string };
  private state: 'idle' | 'running' | 'closed' = 'idle';

  constructor(options: PostgresReadPositionsOptions) {
    this.pool = options.pool;
    this.schema = options.schema ?? 'nerve';
    this.migrate = options.migrate ?? true;
    const table = `${quoteIdent(this.schema)}.read_positions`;
    this.sql = {
      // `current`: the gateway has checked the epoch, so a new one replaces the row (the rule of `advances`,
      // receipts.ts) whatever this node's clock. No row back: a later one was stored, read it.
      advance: readPositionUpsert(this.schema, { current: true, returning: true }),
      one: `SELECT user_id, epoch, read_offset FROM ${table} WHERE tenant = $1 AND room = $2 AND user_id = $3`,
      list: `SELECT user_id, epoch, read_offset FROM ${table} WHERE tenant = $1 AND room = $2 LIMIT $3`,
    };
  }

  async open(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'read positions are closed');
    try {
      if (this.migrate) await applyMigrations(this.pool, this.schema);
    } catch (error) {
      throw new NerveError(ErrorCode.Unavailable, `read positions could not migrate schema ${this.schema}: ${errorText(error)}`, { cause: error });
    }
    this.state = 'running';
  }

  async advance(room: RoomRef, user: string, position: StreamPosition): Promise<AdvanceResult> {
    const moved = await this.query(this.sql.advance, [room.tenant, room.room, user, position.epoch, position.offset, Date.now()]);
    if (moved[0]) return { position: positionOf(moved[0]), advanced: true };
    const stored = (await this.query(this.sql.one, [room.tenant, room.room, user]))[0];
    // Gone between the two statements (a cleanup): what this call asked for is the best answer.
    return { position: stored ? positionOf(stored) : { ...position }, advanced: false };
  }

  async read(room: RoomRef, user: string, listMax: number): Promise<ReadSnapshot> {
    if (listMax > 0) {
      // One more than the cap tells whether the room has more.
      const rows = await this.query(this.sql.list, [room.tenant, room.room, listMax + 1]);
      if (rows.length <= listMax) {
        const all = new Map(rows.map((row) => [row.user_id, positionOf(row)]));
        return { own: all.get(user), all };
      }
    }
    const own = (await this.query(this.sql.one, [room.tenant, room.room, user]))[0];
    return { own: own ? positionOf(own) : undefined, all: undefined };
  }

  health(): LaneHealth {
    const ok = this.state === 'running';
    return ok ? { lane: 'receipts', driver: this.driver, ok } : { lane: 'receipts', driver: this.driver, ok, detail: `read positions are ${this.state}` };
  }

  async close(): Promise<void> {
    this.state = 'closed';
  }

  private async query(sql: string, values: unknown[]): Promise<Row[]> {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `read positions are ${this.state}`);
    try {
      return (await this.pool.query<Row>(sql, values)).rows;
    } catch (error) {
      throw new NerveError(ErrorCode.Unavailable, 'read position store unavailable', { cause: error });
    }
  }
}

function positionOf(row: Row): StreamPosition {
  return { offset: Number(row.read_offset), epoch: row.epoch };
}
