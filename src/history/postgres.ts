/**
 * History on PostgreSQL, for `--bus rabbitmq` deployments (project issue 6):
 * a chat message is stored (in `chat_messages`, the chat-store table) before
 * any node delivers it, offsets are assigned in the same transaction, and
 * replay reads come from PostgreSQL.
 *
 * One order for every node: appends to one room are serialized by a
 * PostgreSQL session advisory lock on the room, held from before the offset
 * is read until the bus has *confirmed* the publish; under it, one read
 * (room log, cmid window) and one atomic write statement (message, newest
 * offset, cmid entry). A RabbitMQ publisher
 * confirm for a non-persistent message means it sits in every bound queue,
 * so message n is in every node's queue before message n+1 of the room can
 * even get its offset: delivery order is offset order on every node, though
 * different nodes publish. (Within a node, appends to one room also queue up
 * in-process first, so waiting appends do not each hold a pool connection.)
 *
 * Failure cases, none silent:
 * - the bus is down: the append fails before storing (`bus_unavailable`);
 * - the publish fails after the commit: the message is stored but not
 *   delivered; the append rejects (`bus_unavailable`, "stored but not
 *   published"), the client retries with the same `cmid` and gets the
 *   original ack, and receivers see the offset gap at the next message and
 *   refill from this history (Gateway chat-gap recovery);
 * - the node dies holding the lock: PostgreSQL ends the session and frees it.
 *
 * Rows are never deleted here: `chat_messages` is the archive the server API
 * pages through. `maxMessages` bounds what replay may return (the "kept"
 * window of the recovery rule, src/history/recovery.ts), not what is stored.
 * Idempotency entries live in `chat_idempotency` and expire after
 * `idempotencyWindowMs` (expired ones of a room are swept on its appends).
 * Limit: `data` also goes to the `body` jsonb column, so a string containing
 * U+0000 (which jsonb cannot hold) fails the append with `internal`.
 */
import type pg from 'pg';
import type { Bus } from '../bus/bus.js';
import type { LaneHealth } from '../lanes.js';
import { ConfigError } from '../options.js';
import { ErrorCode } from '../protocol/codes.js';
import { NerveError } from '../protocol/errors.js';
import type { ChatMessage, StreamPosition } from '../protocol/frames.js';
import { applyMigrations, quoteIdent } from '../workers/db.js';
import type { AppendResult, AppendTarget, ChatDraft, History, RecentResult, RecoveryResult, RoomRef } from './history.js';
import { canRecover, clampLimit, newEpoch, type LogState } from './recovery.js';

export interface PostgresHistoryOptions {
  /** Pool owned by the caller (not ended by `close`). Required. */
  pool: pg.Pool;
  /** Schema holding the chat-store tables; migrated on `start`. Default `nerve`. */
  schema?: string;
  /** Bus on which `append` publishes each stored message. Required. */
  bus: Bus;
  /** Newest messages per room that replay may return (older ones stay stored). 0 = none. Default 1000. */
  maxMessages?: number;
  /** How long a repeated (room, sender, cmid) is recognised, ms. 0 disables. Default 120000. */
  idempotencyWindowMs?: number;
  /** Most messages `since` returns as a recovery. Default 1000. */
  recoveryLimit?: number;
  /** Apply migrations on `start`. Default true. */
  migrate?: boolean;
  /** Clock, ms since epoch. Injected by tests. Default `Date.now`. */
  now?: () => number;
}

interface LogRow {
  epoch: string;
  last_offset: string;
}

function nonNegative(setting: string, value: number, min = 0): number {
  if (!Number.isInteger(value) || value < min) throw new ConfigError(setting, `an integer ≥ ${min}`, value);
  return value;
}

export class PostgresHistory implements History {
  readonly driver = 'postgres';
  private readonly pool: pg.Pool;
  private readonly schema: string;
  private readonly bus: Bus;
  private readonly maxMessages: number;
  private readonly idempotencyWindowMs: number;
  private readonly recoveryLimit: number;
  private readonly migrate: boolean;
  private readonly now: () => number;
  private readonly t: { logs: string; messages: string; idem: string };
  /** Appends waiting per room on this node (see the module comment). */
  private readonly roomQueues = new Map<string, Promise<unknown>>();
  private state: 'idle' | 'running' | 'closed' = 'idle';
  private lastError: string | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: PostgresHistoryOptions) {
    if (!options?.pool) throw new ConfigError('postgresUrl', 'a PostgreSQL pool for the postgres history', undefined);
    if (!options.bus) throw new ConfigError('bus', 'a Bus instance', undefined);
    this.pool = options.pool;
    this.bus = options.bus;
    this.schema = options.schema ?? 'nerve';
    const ident = quoteIdent(this.schema);
    this.t = { logs: `${ident}.room_logs`, messages: `${ident}.chat_messages`, idem: `${ident}.chat_idempotency` };
    this.maxMessages = nonNegative('maxMessages', options.maxMessages ?? 1000);
    this.idempotencyWindowMs = nonNegative('idempotencyWindowMs', options.idempotencyWindowMs ?? 120_000);
    this.recoveryLimit = nonNegative('recoveryLimit', options.recoveryLimit ?? 1000, 1);
    this.migrate = options.migrate ?? true;
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'history is closed');
    try {
      if (this.migrate) await applyMigrations(this.pool, this.schema);
    } catch (error) {
      throw new NerveError(ErrorCode.Unavailable, `postgres history could not migrate schema ${this.schema}: ${text(error)}`, { cause: error });
    }
    this.state = 'running';
  }

  append(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult> {
    if (this.state !== 'running') return Promise.reject(new NerveError(ErrorCode.Unavailable, `history is ${this.state}`));
    const key = JSON.stringify([room.tenant, room.room]);
    const previous = this.roomQueues.get(key) ?? Promise.resolve();
    const next = previous.then(
      () => this.appendLocked(room, draft, target),
      () => this.appendLocked(room, draft, target),
    );
    const tail = next.catch(() => {});
    this.roomQueues.set(key, tail);
    void tail.then(() => {
      if (this.roomQueues.get(key) === tail) this.roomQueues.delete(key);
    });
    return next;
  }

  private async appendLocked(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult> {
    this.assertRunning();
    const client = await this.connect();
    const lockKey = `nerve-room-log:${this.schema}:${JSON.stringify([room.tenant, room.room])}`;
    let locked = false;
    let broken = false;
    try {
      await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockKey]);
      locked = true;
      const stored = await this.store(client, room, draft, target);
      if (stored.duplicate) return { message: stored.message, duplicate: true };
      try {
        // Still under the room lock: the next message of the room waits for this confirm.
        await this.bus.publish(target.channel, stored.envelope);
      } catch (error) {
        throw new NerveError(ErrorCode.BusUnavailable, 'message stored but not published', { cause: error });
      }
      return { message: stored.message, duplicate: false };
    } catch (error) {
      broken = !(error instanceof NerveError);
      throw error instanceof NerveError ? error : this.failure('append', error);
    } finally {
      if (locked) {
        // A connection that cannot unlock is destroyed, which frees the lock with the session.
        await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockKey]).catch(() => {
          broken = true;
        });
      }
      client.release(broken);
    }
  }

  /**
   * Under the room lock, so no other append of the room runs meanwhile: one
   * read (the log row, created on first use, and the cmid window), then one
   * write statement (message, newest offset, cmid entry), atomic on its own
   * and committed with a single WAL flush.
   */
  private async store(
    client: pg.PoolClient,
    room: RoomRef,
    draft: ChatDraft,
    target: AppendTarget,
  ): Promise<{ duplicate: true; message: ChatMessage } | { duplicate: false; message: ChatMessage; envelope: ReturnType<AppendTarget['envelope']> }> {
    const now = this.now();
    const windowed = draft.cmid !== undefined && this.idempotencyWindowMs > 0;
    const read = await client.query<LogRow & { original: string | null; redelivered: string | null }>(
      `WITH created AS (
         INSERT INTO ${this.t.logs} (tenant, room, epoch) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING epoch, last_offset
       ), log AS (
         SELECT epoch, last_offset FROM created UNION ALL SELECT epoch, last_offset FROM ${this.t.logs} WHERE tenant = $1 AND room = $2
       )
       SELECT log.epoch, log.last_offset,
         (SELECT m.message_json FROM ${this.t.idem} i JOIN ${this.t.messages} m ON m.tenant = i.tenant AND m.id = i.message_id
          WHERE $4::boolean AND i.tenant = $1 AND i.room = $2 AND i.sender = $5 AND i.cmid = $6 AND i.expires_at > $7) AS original,
         (SELECT m.message_json FROM ${this.t.messages} m WHERE m.tenant = $1 AND m.id = $8 AND m.room = $2) AS redelivered
       FROM log LIMIT 1`,
      [room.tenant, room.room, newEpoch(), windowed, draft.from, draft.cmid ?? '', now, draft.id],
    );
    const log = read.rows[0];
    if (!log) throw new NerveError(ErrorCode.Internal, 'room log row vanished');
    if (log.original) return { duplicate: true, message: JSON.parse(log.original) as ChatMessage };
    // The same draft again (same server-made id): the chat-store worker got a
    // request redelivered after it stored it but before it acked. One copy.
    if (log.redelivered) return { duplicate: true, message: JSON.parse(log.redelivered) as ChatMessage };

    // A down bus fails the append before anything is stored: the client retries.
    const busHealth = this.bus.health();
    if (!busHealth.ok) throw new NerveError(ErrorCode.BusUnavailable, `bus is down: ${busHealth.detail ?? busHealth.driver}`);

    const offset = Number(log.last_offset) + 1;
    const message: ChatMessage = { ...draft, offset, epoch: log.epoch };
    // Built before storing: a throwing envelope builder leaves the log untouched.
    const envelope = target.envelope(message);
    try {
      await client.query(
        `WITH stored AS (
           INSERT INTO ${this.t.messages} (tenant, id, room, sender, sent_at, room_offset, epoch, body, cmid, event_id, message_json)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $2, $10) RETURNING id
         ), advanced AS (
           UPDATE ${this.t.logs} SET last_offset = $6 WHERE tenant = $1 AND room = $3 RETURNING last_offset
         ), swept AS (
           DELETE FROM ${this.t.idem} WHERE $11::boolean AND tenant = $1 AND room = $3 AND expires_at <= $12 AND NOT (sender = $4 AND cmid = $9)
         ), remembered AS (
           INSERT INTO ${this.t.idem} (tenant, room, sender, cmid, message_id, expires_at)
           SELECT $1, $3, $4, $9, $2, $13 WHERE $11::boolean
           ON CONFLICT (tenant, room, sender, cmid) DO UPDATE SET message_id = EXCLUDED.message_id, expires_at = EXCLUDED.expires_at
         )
         SELECT (SELECT count(*) FROM stored) + (SELECT count(*) FROM advanced) AS written`,
        [
          room.tenant,
          message.id,
          room.room,
          message.from,
          message.ts,
          offset,
          log.epoch,
          JSON.stringify(message.data ?? null),
          message.cmid ?? null,
          JSON.stringify(message),
          windowed,
          now,
          now + this.idempotencyWindowMs,
        ],
      );
    } catch (error) {
      if ((error as { code?: unknown }).code === '23505') {
        // Message ids are server-generated and unique: a second message with the same id is a bug, not a retry.
        throw new NerveError(ErrorCode.Internal, `message id ${draft.id} is already stored for tenant ${room.tenant}`, { cause: error });
      }
      if (String((error as { code?: unknown }).code ?? '').startsWith('22')) {
        // SQLSTATE class 22, data exception (U+0000 in jsonb, say): a retry fails the same way, so not `unavailable`.
        throw new NerveError(ErrorCode.Internal, `message cannot be stored: ${text(error)}`, { cause: error });
      }
      throw error;
    }
    return { duplicate: false, message, envelope };
  }

  /** The room's log row, created (with a fresh epoch) on first use. */
  private async logRow(room: RoomRef): Promise<LogRow> {
    const result = await this.pool.query<LogRow>(
      `WITH created AS (
         INSERT INTO ${this.t.logs} (tenant, room, epoch) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING epoch, last_offset
       )
       SELECT epoch, last_offset FROM created UNION ALL SELECT epoch, last_offset FROM ${this.t.logs} WHERE tenant = $1 AND room = $2 LIMIT 1`,
      [room.tenant, room.room, newEpoch()],
    );
    const row = result.rows[0];
    if (!row) throw new NerveError(ErrorCode.Internal, 'room log row vanished');
    return row;
  }

  async recent(room: RoomRef, limit: number): Promise<RecentResult> {
    this.assertRunning();
    try {
      const state = await this.state_(room);
      const count = clampLimit(limit, this.maxMessages);
      return { messages: await this.range(room, state.epoch, Math.max(state.oldest, state.last - count + 1), state.last), position: { offset: state.last, epoch: state.epoch } };
    } catch (error) {
      throw error instanceof NerveError ? error : this.failure('read', error);
    }
  }

  async since(room: RoomRef, position: StreamPosition, limit: number): Promise<RecoveryResult> {
    this.assertRunning();
    try {
      const state = await this.state_(room);
      const bound = clampLimit(limit, this.recoveryLimit);
      const at = { offset: state.last, epoch: state.epoch };
      if (canRecover(state, position, bound)) {
        return { messages: await this.range(room, state.epoch, position.offset + 1, state.last), position: at, recovered: true };
      }
      const count = Math.min(bound, this.maxMessages);
      return { messages: await this.range(room, state.epoch, Math.max(state.oldest, state.last - count + 1), state.last), position: at, recovered: false };
    } catch (error) {
      throw error instanceof NerveError ? error : this.failure('read', error);
    }
  }

  /** Epoch, newest offset, and the oldest offset replay may return. */
  private async state_(room: RoomRef): Promise<LogState> {
    const row = await this.logRow(room);
    const last = Number(row.last_offset);
    const oldest = this.maxMessages > 0 ? Math.max(1, last - this.maxMessages + 1) : last + 1;
    return { epoch: row.epoch, last, oldest };
  }

  private async range(room: RoomRef, epoch: string, from: number, to: number): Promise<ChatMessage[]> {
    if (to < from) return [];
    const result = await this.pool.query<{ message_json: string | null }>(
      `SELECT message_json FROM ${this.t.messages} WHERE tenant = $1 AND room = $2 AND epoch = $3 AND room_offset BETWEEN $4 AND $5 ORDER BY room_offset`,
      [room.tenant, room.room, epoch, from, to],
    );
    return result.rows.flatMap((row) => (row.message_json ? [JSON.parse(row.message_json) as ChatMessage] : []));
  }

  health(): LaneHealth {
    const base = { lane: 'history', driver: this.driver };
    if (this.state !== 'running') return { ...base, ok: false, detail: `history is ${this.state}` };
    return this.lastError ? { ...base, ok: true, detail: `last error: ${this.lastError}` } : { ...base, ok: true };
  }

  close(): Promise<void> {
    this.closing ??= Promise.allSettled([...this.roomQueues.values()]).then(() => {
      this.state = 'closed';
    });
    this.state = this.state === 'running' ? 'closed' : this.state;
    return this.closing;
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (error) {
      throw this.failure('connect', error);
    }
  }

  private failure(what: string, error: unknown): NerveError {
    this.lastError = `${what}: ${text(error)}`;
    return new NerveError(ErrorCode.Unavailable, `postgres history ${what} failed`, { cause: error });
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `history is ${this.state}`);
  }
}

function text(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
