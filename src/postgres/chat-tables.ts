/**
 * The one writer of the chat tables (`chat_messages`, `room_logs`,
 * `chat_idempotency`; migrations 001 and 004). The PostgreSQL history stores
 * a batch under the room lock (`readBatch`, `writeBatch`); the chat-store
 * worker records `message.created` (`insertEvent`), a no-op for a message the
 * history stored first. Both paths key rows by (tenant, message id).
 */
import type pg from 'pg';
import type { MessageAction, MessageTarget, Reaction } from '../../packages/protocol/src/actions.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';
import { quoteIdent } from './db.js';

/** A room log: its epoch and newest offset (bigint, so text). */
export interface LogRow {
  epoch: string;
  last_offset: string;
}

/** What `readBatch` answers: the log row, and per 1-based batch position the earlier copy found. */
export interface BatchRead extends LogRow {
  found: Array<[number, string | null, string | null]>;
}

/** One message of `readBatch`'s batch: `cmid` only when the idempotency window remembers it. */
export interface BatchKey {
  id: string;
  from: string;
  cmid: string | null;
}

/** A new message of a batch, and its `cmid` when remembered. */
export interface BatchRow {
  message: ChatMessage;
  cmid: string | null;
}

/** The columns `message.created` carries (the chat-store worker's row). */
export interface ChatEventRow {
  tenant: string;
  id: string;
  room: string | undefined;
  session: string | null;
  from: string;
  sentAt: number;
  offset: number;
  epoch: string;
  body: unknown;
  cmid: string | null;
  eventId: string;
  /** An edit, delete or reaction entry: what it does, and to which message (chat-folds.ts folds it in). */
  action?: MessageAction | null;
  target?: MessageTarget | null;
}

/** The columns a chat_messages row is read back from, in ArchivedRow's order. */
export const ARCHIVED_COLUMNS =
  'id, sender, sent_at, room_offset, body, cmid, message_json, action, target_id, target_offset, edited_at, deleted_at, reactions';

/** A chat_messages row as history paging reads it (bigints as text). */
export interface ArchivedRow {
  id: string;
  sender: string;
  sent_at: string;
  room_offset: string;
  body: unknown;
  cmid: string | null;
  message_json: string | null;
  action: MessageAction | null;
  target_id: string | null;
  target_offset: string | null;
  edited_at: string | null;
  deleted_at: string | null;
  reactions: Reaction[] | null;
}

/**
 * The message as delivered (folded, when entries applied to it): its exact
 * JSON when stored, else rebuilt from the columns in the frame's field order.
 */
export function archivedMessage(row: ArchivedRow, room: string, epoch: string): ChatMessage {
  if (row.message_json) return JSON.parse(row.message_json) as ChatMessage;
  const message: ChatMessage = {
    op: 'message',
    class: 'chat',
    room,
    id: row.id,
    from: row.sender,
    ts: Number(row.sent_at),
    data: row.body,
    offset: Number(row.room_offset),
    epoch,
  };
  if (row.cmid !== null) message.cmid = row.cmid;
  if (row.action !== null && row.target_id !== null && row.target_offset !== null) {
    message.action = row.action;
    message.target = { id: row.target_id, offset: Number(row.target_offset) };
  }
  if (row.deleted_at !== null) message.deleted = true;
  else if (row.edited_at !== null) message.editedAt = Number(row.edited_at);
  if (row.reactions !== null && row.reactions.length > 0 && row.deleted_at === null) message.reactions = reactionsOf(row.reactions);
  return message;
}

/**
 * Reactions read from the `reactions` jsonb column, in the key order of the
 * protocol (`{emoji, count, users}`, as live folds have them): jsonb keeps
 * an object's keys sorted, so as stored they come back `{count, emoji, users}`.
 */
export function reactionsOf(stored: readonly Reaction[]): Reaction[] {
  return stored.map(({ emoji, count, users }) => ({ emoji, count, users }));
}

export class ChatTables {
  readonly schema: string;
  private readonly logs: string;
  private readonly messages: string;
  private readonly idem: string;
  /** SQL `created, log` CTEs: the room log row of ($1 tenant, $2 room), created with epoch $3 on first use. */
  private readonly logCte: string;

  constructor(schema: string) {
    this.schema = schema;
    const ident = quoteIdent(schema);
    this.logs = `${ident}.room_logs`;
    this.messages = `${ident}.chat_messages`;
    this.idem = `${ident}.chat_idempotency`;
    this.logCte = `created AS (
         INSERT INTO ${this.logs} (tenant, room, epoch) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING epoch, last_offset
       ), log AS (
         SELECT epoch, last_offset FROM created UNION ALL SELECT epoch, last_offset FROM ${this.logs} WHERE tenant = $1 AND room = $2
       )`;
  }

  /** The chat-store worker's row for `message.created`: nothing when the message is stored already. */
  async insertEvent(db: pg.Pool | pg.PoolClient, row: ChatEventRow): Promise<void> {
    await db.query(
      `INSERT INTO ${this.messages} (tenant, id, room, session, sender, sent_at, room_offset, epoch, body, cmid, event_id, action, target_id, target_offset)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (tenant, id) DO NOTHING`,
      [
        row.tenant,
        row.id,
        row.room ?? null,
        row.session,
        row.from,
        row.sentAt,
        row.offset,
        row.epoch,
        JSON.stringify(row.body ?? null),
        row.cmid,
        row.eventId,
        row.action ?? null,
        row.target?.id ?? null,
        row.target?.offset ?? null,
      ],
    );
  }

  /**
   * Under the room lock: the log row (created with `epoch` on first use) and
   * the earlier copies of the batch's messages, by a `cmid` within the window
   * or by the same id (a redelivered intake request).
   */
  async readBatch(client: pg.PoolClient, tenant: string, room: string, epoch: string, batch: BatchKey[], now: number): Promise<BatchRead | undefined> {
    return firstOrAgain(() => this.queryBatch(client, tenant, room, epoch, batch, now));
  }

  private async queryBatch(client: pg.PoolClient, tenant: string, room: string, epoch: string, batch: BatchKey[], now: number): Promise<BatchRead | undefined> {
    const read = await client.query<BatchRead>(
      `WITH ${this.logCte}
       SELECT log.epoch, log.last_offset,
         (SELECT coalesce(json_agg(json_build_array(d.i, o.message_json, r.message_json)), '[]'::json)
          FROM unnest($4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS d(id, sender, cmid, i)
          LEFT JOIN LATERAL (
            SELECT m.message_json FROM ${this.idem} i JOIN ${this.messages} m ON m.tenant = i.tenant AND m.id = i.message_id
            WHERE d.cmid IS NOT NULL AND i.tenant = $1 AND i.room = $2 AND i.sender = d.sender AND i.cmid = d.cmid AND i.expires_at > $7
          ) o ON true
          LEFT JOIN LATERAL (SELECT m.message_json FROM ${this.messages} m WHERE m.tenant = $1 AND m.id = d.id AND m.room = $2) r ON true
          WHERE o.message_json IS NOT NULL OR r.message_json IS NOT NULL) AS found
       FROM log LIMIT 1`,
      [tenant, room, epoch, batch.map((key) => key.id), batch.map((key) => key.from), batch.map((key) => key.cmid), now],
    );
    return read.rows[0];
  }

  /**
   * The batch's messages, the room's newest offset and the `cmid` entries
   * (expiring at `expiresAt`; the room's expired ones swept), in one
   * statement. A second message with a stored id fails it (23505).
   */
  async writeBatch(client: pg.PoolClient, tenant: string, room: string, epoch: string, rows: BatchRow[], now: number, expiresAt: number): Promise<void> {
    const remember = rows.some((row) => row.cmid !== null);
    await client.query(
      `WITH d AS (
         SELECT * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $15::text[], $16::text[], $17::bigint[])
           AS d(id, sender, sent_at, room_offset, body, cmid, message_json, action, target_id, target_offset)
       ), stored AS (
         INSERT INTO ${this.messages} (tenant, id, room, sender, sent_at, room_offset, epoch, body, cmid, event_id, message_json, action, target_id, target_offset)
         SELECT $1, d.id, $2, d.sender, d.sent_at, d.room_offset, $10, d.body::jsonb, d.cmid, d.id, d.message_json, d.action, d.target_id, d.target_offset FROM d
         RETURNING id
       ), advanced AS (
         UPDATE ${this.logs} SET last_offset = $11 WHERE tenant = $1 AND room = $2 RETURNING last_offset
       ), swept AS (
         DELETE FROM ${this.idem} x WHERE $12::boolean AND x.tenant = $1 AND x.room = $2 AND x.expires_at <= $13
           AND NOT EXISTS (SELECT 1 FROM d WHERE d.cmid IS NOT NULL AND d.sender = x.sender AND d.cmid = x.cmid)
       ), remembered AS (
         INSERT INTO ${this.idem} (tenant, room, sender, cmid, message_id, expires_at)
         SELECT $1, $2, d.sender, d.cmid, d.id, $14 FROM d WHERE $12::boolean AND d.cmid IS NOT NULL
         ON CONFLICT (tenant, room, sender, cmid) DO UPDATE SET message_id = EXCLUDED.message_id, expires_at = EXCLUDED.expires_at
       )
       SELECT (SELECT count(*) FROM stored) + (SELECT count(*) FROM advanced) AS written`,
      [
        tenant,
        room,
        rows.map((row) => row.message.id),
        rows.map((row) => row.message.from),
        rows.map((row) => row.message.ts),
        rows.map((row) => row.message.offset),
        rows.map((row) => JSON.stringify(row.message.data ?? null)),
        rows.map((row) => row.cmid),
        rows.map((row) => JSON.stringify(row.message)),
        epoch,
        rows[rows.length - 1]!.message.offset,
        remember,
        now,
        expiresAt,
        rows.map((row) => row.message.action ?? null),
        rows.map((row) => row.message.target?.id ?? null),
        rows.map((row) => row.message.target?.offset ?? null),
      ],
    );
  }

  /** The room's log row, created with `epoch` on first use. */
  async logRow(pool: pg.Pool, tenant: string, room: string, epoch: string): Promise<LogRow | undefined> {
    return firstOrAgain(
      async () => (await pool.query<LogRow>(`WITH ${this.logCte} SELECT epoch, last_offset FROM log LIMIT 1`, [tenant, room, epoch])).rows[0],
    );
  }

  /**
   * History paging's archive read: the newest `limit` messages of the room's
   * epoch below offset `before`, oldest first (index chat_messages_room_offset).
   * Rows the chat-store worker wrote have no `message_json`: built from their columns.
   */
  async older(pool: pg.Pool, tenant: string, room: string, epoch: string, before: number, limit: number): Promise<ChatMessage[]> {
    const result = await pool.query<ArchivedRow>(
      `SELECT ${ARCHIVED_COLUMNS} FROM ${this.messages}
       WHERE tenant = $1 AND room = $2 AND epoch = $3 AND room_offset < $4 ORDER BY room_offset DESC LIMIT $5`,
      [tenant, room, epoch, before, limit],
    );
    return result.rows.reverse().map((row) => archivedMessage(row, room, epoch));
  }

  /** The stored messages of offsets [from, to] of the room's epoch, in offset order. */
  async range(pool: pg.Pool, tenant: string, room: string, epoch: string, from: number, to: number): Promise<ChatMessage[]> {
    const result = await pool.query<{ message_json: string | null }>(
      `SELECT message_json FROM ${this.messages} WHERE tenant = $1 AND room = $2 AND epoch = $3 AND room_offset BETWEEN $4 AND $5 ORDER BY room_offset`,
      [tenant, room, epoch, from, to],
    );
    return result.rows.flatMap((row) => (row.message_json ? [JSON.parse(row.message_json) as ChatMessage] : []));
  }
}

/**
 * A statement with the log CTE, run again once when it found no log row: on
 * a room's first use by two nodes at once, our INSERT waits for theirs and
 * does nothing, and the statement's snapshot, taken before their commit,
 * does not see their row either. The next statement's snapshot does.
 */
async function firstOrAgain<T>(read: () => Promise<T | undefined>): Promise<T | undefined> {
  return (await read()) ?? read();
}
