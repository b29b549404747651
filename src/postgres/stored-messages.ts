/**
 * Reading the chat archive for `GET /api/rooms/:room/messages`: pages of a
 * room's stored messages behind an opaque cursor, folded: edits, deletes and
 * reactions are in their target's row (chat-folds.ts), not rows of their own.
 */
import type pg from 'pg';
import type { Reaction } from '../../packages/protocol/src/actions.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';
import { reactionsOf } from './chat-tables.js';
import { quoteIdent } from './db.js';

/** A stored chat message: the protocol's ChatMessage without its frame tags. */
export type StoredMessage = Omit<ChatMessage, 'op' | 'class'>;

export interface StoredMessagePage {
  /** Oldest first. */
  messages: StoredMessage[];
  /** Pass as `before` to get the page of older messages; null when there are none. */
  next: string | null;
}

interface Cursor {
  ts: number;
  offset: number;
  id: string;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.ts, cursor.offset, cursor.id])).toString('base64url');
}

/** Thrown for a `before` cursor this function did not produce. */
export class InvalidCursorError extends Error {
  override readonly name = 'InvalidCursorError';
  readonly code = 'invalid_cursor';
}

function decodeCursor(text: string): Cursor {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (Array.isArray(value) && value.length === 3 && Number.isInteger(value[0]) && Number.isInteger(value[1]) && typeof value[2] === 'string') {
      return { ts: value[0] as number, offset: value[1] as number, id: value[2] };
    }
  } catch {
    // fall through
  }
  throw new InvalidCursorError('invalid cursor');
}

/**
 * A page of a room's stored messages: the `limit` (1-200, default 50) newest
 * before `before` (an opaque cursor from a previous page's `next`; omitted =
 * from the newest), returned oldest first. Ordered by server time, then room
 * offset, then id.
 */
export async function readStoredMessages(
  pool: pg.Pool,
  schema: string,
  tenant: string,
  room: string,
  options: { before?: string; limit?: number } = {},
): Promise<StoredMessagePage> {
  const limit = Math.min(Math.max(Math.trunc(options.limit ?? 50), 1), 200);
  const params: unknown[] = [tenant, room, limit + 1];
  let where = 'tenant = $1 AND room = $2 AND action IS NULL';
  if (options.before !== undefined) {
    const c = decodeCursor(options.before);
    params.push(c.ts, c.offset, c.id);
    where += ' AND (sent_at, room_offset, id) < ($4, $5, $6)';
  }
  const result = await pool.query<{
    id: string;
    room: string;
    sender: string;
    sent_at: string;
    room_offset: string;
    epoch: string;
    body: unknown;
    cmid: string | null;
    edited_at: string | null;
    deleted_at: string | null;
    reactions: Reaction[] | null;
  }>(
    `SELECT id, room, sender, sent_at, room_offset, epoch, body, cmid, edited_at, deleted_at, reactions FROM ${quoteIdent(schema)}.chat_messages
     WHERE ${where} ORDER BY sent_at DESC, room_offset DESC, id DESC LIMIT $3`,
    params,
  );
  const rows = result.rows.slice(0, limit);
  const messages = rows.reverse().map((row) => {
    const message: StoredMessage = {
      id: row.id,
      room: row.room,
      from: row.sender,
      ts: Number(row.sent_at),
      offset: Number(row.room_offset),
      epoch: row.epoch,
      data: row.body,
    };
    if (row.cmid !== null) message.cmid = row.cmid;
    if (row.deleted_at !== null) message.deleted = true;
    else if (row.edited_at !== null) message.editedAt = Number(row.edited_at);
    if (row.deleted_at === null && row.reactions !== null && row.reactions.length > 0) message.reactions = reactionsOf(row.reactions);
    return message;
  });
  const oldest = messages[0];
  const next = result.rows.length > limit && oldest ? encodeCursor({ ts: oldest.ts, offset: oldest.offset, id: oldest.id }) : null;
  return { messages, next };
}
