/**
 * Folding edits, deletes and reactions into their target's row
 * (docs/protocol.md, "Editing, deleting and reacting"): the chat-store
 * worker's second step after storing an entry, with the rule of
 * packages/protocol/src/fold.ts. The fold is recomputed from every stored
 * entry of the target, in offset order, under a lock on the target: events
 * redelivered, reordered, or arriving before their target converge to the
 * same row. An edit rewrites `body` and `message_json` and sets
 * `edited_at`; a delete empties them and sets `deleted_at`.
 */
import type pg from 'pg';
import type { MessageTarget } from '../../packages/protocol/src/actions.js';
import { foldEntries, isActionEntry, unfolded, type ActionEntry } from '../../packages/protocol/src/fold.js';
import { ARCHIVED_COLUMNS, archivedMessage, type ArchivedRow } from './chat-tables.js';
import { quoteIdent, withTransaction } from './db.js';

/** Which room log a fold works in. */
interface FoldScope {
  tenant: string;
  room: string;
  epoch: string;
}

export class ChatFolds {
  private readonly messages: string;

  /** `schema` holds the chat tables (migration 006 adds the columns used here). */
  constructor(schema: string) {
    this.messages = `${quoteIdent(schema)}.chat_messages`;
  }

  /**
   * After storing an entry for `target` (committed): fold it in. A target
   * not stored yet folds its entries when it is (`afterMessage`): each side
   * looks after its own row is committed, so one of the two sees the other.
   */
  async afterEntry(pool: pg.Pool, scope: FoldScope, target: MessageTarget): Promise<void> {
    await this.fold(pool, scope, target);
  }

  /** After storing a plain message: fold the entries that arrived before it, if any. */
  async afterMessage(pool: pg.Pool, scope: FoldScope, message: MessageTarget): Promise<void> {
    const found = await pool.query(
      `SELECT 1 FROM ${this.messages} WHERE tenant = $1 AND room = $2 AND epoch = $3 AND target_offset = $4 AND target_id = $5 LIMIT 1`,
      [scope.tenant, scope.room, scope.epoch, message.offset, message.id],
    );
    if (found.rowCount !== 0) await this.fold(pool, scope, message);
  }

  /** Recompute the target's row from its entries, in one transaction under a lock on it; false when it is not stored. */
  async fold(pool: pg.Pool, scope: FoldScope, target: MessageTarget): Promise<boolean> {
    return withTransaction(pool, async (client) => {
      const key = JSON.stringify(['chat-fold', scope.tenant, scope.room, scope.epoch, target.offset]);
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [key]);
      const where = 'tenant = $1 AND room = $2 AND epoch = $3';
      const params = [scope.tenant, scope.room, scope.epoch, target.offset, target.id];
      const row = (
        await client.query<ArchivedRow>(
          `SELECT ${ARCHIVED_COLUMNS} FROM ${this.messages} WHERE ${where} AND room_offset = $4 AND id = $5 AND action IS NULL FOR UPDATE`,
          params,
        )
      ).rows[0];
      if (!row) return false;
      const entryRows = await client.query<ArchivedRow>(
        `SELECT ${ARCHIVED_COLUMNS} FROM ${this.messages} WHERE ${where} AND target_offset = $4 AND target_id = $5 ORDER BY room_offset`,
        params,
      );
      const entries = entryRows.rows.map((entry) => archivedMessage(entry, scope.room, scope.epoch)).filter(isActionEntry);
      if (entries.length === 0) return true;
      const folded = foldEntries(unfolded(archivedMessage(row, scope.room, scope.epoch)), entries);
      const deletedAt = folded.deleted === true ? firstDelete(entries) : null;
      await client.query(
        `UPDATE ${this.messages} SET body = $6::jsonb, message_json = CASE WHEN message_json IS NULL THEN NULL ELSE $7 END,
           edited_at = $8, deleted_at = $9, reactions = $10::jsonb
         WHERE ${where} AND room_offset = $4 AND id = $5`,
        [
          ...params,
          JSON.stringify(folded.data ?? null),
          JSON.stringify(folded),
          folded.editedAt ?? null,
          deletedAt,
          folded.reactions ? JSON.stringify(folded.reactions) : null,
        ],
      );
      return true;
    });
  }
}

/** When the message was deleted: the `ts` of its first delete entry. */
function firstDelete(entries: readonly ActionEntry[]): number | null {
  return entries.find((entry) => entry.action === 'delete')?.ts ?? null;
}
