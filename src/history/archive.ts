/**
 * The chat archive behind history paging (paging.ts): the chat tables in
 * PostgreSQL, written by the chat-store worker (Redis Streams and memory
 * histories) or by the PostgreSQL history itself. Rows are never deleted,
 * so the archive reaches back to offset 1 of every epoch it stored.
 */
import type pg from 'pg';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';
import { ChatTables } from '../postgres/chat-tables.js';
import type { RoomRef } from './history.js';
import type { ChatArchive } from './paging.js';

export class PostgresChatArchive implements ChatArchive {
  private readonly tables: ChatTables;

  /** `pool` is the caller's (never ended here); `schema` holds the chat tables (migrated by their writer). */
  constructor(
    private readonly pool: pg.Pool,
    schema: string,
  ) {
    this.tables = new ChatTables(schema);
  }

  async older(room: RoomRef, epoch: string, before: number, limit: number): Promise<ChatMessage[]> {
    if (limit <= 0 || before <= 1) return [];
    try {
      return await this.tables.older(this.pool, room.tenant, room.room, epoch, before, limit);
    } catch (error) {
      // A read: nothing happened, so the client may simply ask again.
      throw new NerveError(ErrorCode.Unavailable, 'the chat archive could not be read', { cause: error });
    }
  }
}
