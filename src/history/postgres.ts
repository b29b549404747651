/**
 * History on PostgreSQL, for `--bus rabbitmq` (docs/architecture.md, "Chat:
 * stored in PostgreSQL, then delivered"): a room's appends are serialized by
 * a session advisory lock held until the bus confirmed their publishes, so
 * delivery order is offset order on every node. Appends waiting meanwhile go
 * as one batch (group commit). The SQL is src/postgres/chat-tables.ts.
 */
import type pg from 'pg';
import type { Bus, BusEnvelope } from '../bus/bus.js';
import type { LaneHealth } from '../lanes.js';
import { ConfigError } from '../config/errors.js';
import { integerAtLeast } from '../config/validate.js';
import { errorText } from '../errors.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ChatMessage, StreamPosition } from '../../packages/protocol/src/frames.js';
import { ChatTables, type LogRow } from '../postgres/chat-tables.js';
import { applyMigrations } from '../postgres/migrations.js';
import type { AppendResult, AppendTarget, ChatDraft, History, HistoryPage, PageQuery, RecentResult, RecoveryResult, RoomRef } from './history.js';
import { PostgresChatArchive } from './archive.js';
import { pageAcross } from './paging.js';
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

/** Most appends of one room stored in one statement and published in one go. */
const MAX_BATCH = 256;

interface PendingAppend {
  draft: ChatDraft;
  target: AppendTarget;
  /** Set by the first resolve or reject; later ones are no-ops. */
  settled: boolean;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
}

interface RoomQueue {
  pending: PendingAppend[];
  /** Settles once the queue is empty and gone. */
  drained: Promise<void>;
}

/** A message of the batch that is new: stored by this batch's write. */
interface Fresh {
  item: PendingAppend;
  message: ChatMessage;
  envelope: BusEnvelope;
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
  private readonly tables: ChatTables;
  /** Paging reads every stored row, beyond the replay window `maxMessages`. */
  private readonly archive: PostgresChatArchive;
  /** Appends waiting per room on this node (see the module comment). */
  private readonly roomQueues = new Map<string, RoomQueue>();
  private state: 'idle' | 'running' | 'closed' = 'idle';
  private lastError: string | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: PostgresHistoryOptions) {
    if (!options?.pool) throw new ConfigError('postgresUrl', 'a PostgreSQL pool for the postgres history', undefined);
    if (!options.bus) throw new ConfigError('bus', 'a Bus instance', undefined);
    this.pool = options.pool;
    this.bus = options.bus;
    this.schema = options.schema ?? 'nerve';
    this.tables = new ChatTables(this.schema);
    this.archive = new PostgresChatArchive(this.pool, this.schema);
    this.maxMessages = integerAtLeast('maxMessages', options.maxMessages ?? 1000, 0);
    this.idempotencyWindowMs = integerAtLeast('idempotencyWindowMs', options.idempotencyWindowMs ?? 120_000, 0);
    this.recoveryLimit = integerAtLeast('recoveryLimit', options.recoveryLimit ?? 1000, 1);
    this.migrate = options.migrate ?? true;
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'history is closed');
    try {
      if (this.migrate) await applyMigrations(this.pool, this.schema);
    } catch (error) {
      throw new NerveError(ErrorCode.Unavailable, `postgres history could not migrate schema ${this.schema}: ${errorText(error)}`, { cause: error });
    }
    this.state = 'running';
  }

  append(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult> {
    if (this.state !== 'running') return Promise.reject(new NerveError(ErrorCode.Unavailable, `history is ${this.state}`));
    return new Promise<AppendResult>((resolve, reject) => {
      const key = JSON.stringify([room.tenant, room.room]);
      const item: PendingAppend = {
        draft,
        target,
        settled: false,
        resolve(result) {
          item.settled = true;
          resolve(result);
        },
        reject(error) {
          item.settled = true;
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      };
      const queue = this.roomQueues.get(key);
      if (queue) {
        queue.pending.push(item);
        return;
      }
      const fresh: RoomQueue = { pending: [item], drained: Promise.resolve() };
      this.roomQueues.set(key, fresh);
      fresh.drained = this.drain(key, room, fresh);
    });
  }

  /** Store the room's waiting appends, a batch at a time, until none is left. Never rejects. */
  private async drain(key: string, room: RoomRef, queue: RoomQueue): Promise<void> {
    while (queue.pending.length > 0) await this.appendBatch(room, queue);
    // Synchronous with the check above: an append arriving later starts a new queue.
    this.roomQueues.delete(key);
  }

  /**
   * One batch under the room lock. The batch is taken once the lock is held,
   * so appends that arrived while this node waited for it (behind another
   * node, or behind its own previous batch) share one read, one write and
   * one WAL flush: group commit. Settles every item it takes.
   */
  private async appendBatch(room: RoomRef, queue: RoomQueue): Promise<void> {
    let batch: PendingAppend[] = [];
    let client: pg.PoolClient;
    try {
      client = await this.connect();
    } catch (error) {
      for (const item of queue.pending.splice(0, MAX_BATCH)) item.reject(error);
      return;
    }
    const lockKey = `nerve-room-log:${this.schema}:${JSON.stringify([room.tenant, room.room])}`;
    let locked = false;
    let broken = false;
    try {
      await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockKey]);
      locked = true;
      batch = queue.pending.splice(0, MAX_BATCH);
      try {
        await this.storeAndPublish(client, room, batch);
      } catch (error) {
        // One message PostgreSQL refuses (U+0000 in its data or cmid, say) must
        // not fail the others: the statement wrote nothing, so store them one by one.
        if (batch.length < 2 || !isDataError(error)) throw error;
        for (const item of batch) {
          if (item.settled) continue;
          try {
            await this.storeAndPublish(client, room, [item]);
          } catch (single) {
            item.reject(this.appendFailure(single, item.draft, room));
          }
        }
      }
    } catch (error) {
      broken = !(error instanceof NerveError) && !isDataError(error);
      const failure = this.appendFailure(error, batch[0]?.draft, room);
      if (!locked) batch = queue.pending.splice(0, MAX_BATCH);
      // Items already settled ignore this.
      for (const item of batch) item.reject(failure);
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
   * Under the room lock: one read (the log row and the batch's earlier
   * copies), one atomic write, then every publish of the batch in offset
   * order on one channel and one wait for their confirms. Settles each item;
   * throws only when nothing of the batch could be stored.
   */
  private async storeAndPublish(client: pg.PoolClient, room: RoomRef, batch: PendingAppend[]): Promise<void> {
    const now = this.now();
    const keys = batch.map((item) => ({ id: item.draft.id, from: item.draft.from, cmid: this.windowed(item.draft) ? item.draft.cmid! : null }));
    const log = await this.tables.readBatch(client, room.tenant, room.room, newEpoch(), keys, now);
    if (!log) throw new NerveError(ErrorCode.Internal, 'room log row vanished');
    // 1-based position in the batch → the earlier copy (a `cmid` match wins over a redelivery).
    const earlier = new Map(log.found.map(([i, original, redelivered]) => [i, (original ?? redelivered)!]));
    const busHealth = this.bus.health();

    const fresh: Fresh[] = [];
    /** Later items of the batch that repeat an earlier one (same `cmid`, or same id): answered with its message. */
    const twins: Array<{ item: PendingAppend; of: Fresh }> = [];
    /** The batch's new messages by `id:` and `cmid:` key. */
    const seen = new Map<string, Fresh>();
    let offset = Number(log.last_offset);
    for (const [index, item] of batch.entries()) {
      const stored = earlier.get(index + 1);
      if (stored) {
        item.resolve({ message: JSON.parse(stored) as ChatMessage, duplicate: true });
        continue;
      }
      const cmidKey = this.windowed(item.draft) ? `cmid:${JSON.stringify([item.draft.from, item.draft.cmid])}` : undefined;
      const twin = (cmidKey === undefined ? undefined : seen.get(cmidKey)) ?? seen.get(`id:${item.draft.id}`);
      if (twin) {
        twins.push({ item, of: twin });
        continue;
      }
      // A down bus fails the append before anything is stored: the client retries.
      if (!busHealth.ok) {
        item.reject(new NerveError(ErrorCode.BusUnavailable, `bus is down: ${busHealth.detail ?? busHealth.driver}`));
        continue;
      }
      const message: ChatMessage = { ...item.draft, offset: offset + 1, epoch: log.epoch };
      let envelope: BusEnvelope;
      try {
        // Built before storing: a throwing envelope builder leaves the log untouched.
        envelope = item.target.envelope(message);
      } catch (error) {
        item.reject(error);
        continue;
      }
      offset += 1;
      const entry: Fresh = { item, message, envelope };
      fresh.push(entry);
      if (cmidKey !== undefined) seen.set(cmidKey, entry);
      seen.set(`id:${item.draft.id}`, entry);
    }
    if (fresh.length === 0) return;

    // Throws with nothing settled but what the read answered: appendBatch may retry the rest one by one.
    const rows = fresh.map((entry) => ({ message: entry.message, cmid: this.windowed(entry.message) ? entry.message.cmid! : null }));
    await this.tables.writeBatch(client, room.tenant, room.room, log.epoch, rows, now, now + this.idempotencyWindowMs);

    // Issued in offset order on one channel: every node's queue gets them in that order.
    const confirms = await Promise.allSettled(fresh.map((entry) => this.bus.publish(entry.item.target.channel, entry.envelope)));
    for (const [i, entry] of fresh.entries()) {
      const confirm = confirms[i]!;
      if (confirm.status === 'fulfilled') entry.item.resolve({ message: entry.message, duplicate: false });
      else entry.item.reject(new NerveError(ErrorCode.BusUnavailable, 'message stored but not published', { cause: confirm.reason }));
    }
    // Stored either way: a repeat gets the original, as a retry would.
    for (const { item, of } of twins) item.resolve({ message: of.message, duplicate: true });
  }

  /** Whether `draft`'s cmid is remembered: it has one, and the idempotency window is on. */
  private windowed(draft: ChatDraft): boolean {
    return draft.cmid !== undefined && this.idempotencyWindowMs > 0;
  }

  /** The error an append is answered with. */
  private appendFailure(error: unknown, draft: ChatDraft | undefined, room: RoomRef): NerveError {
    if (error instanceof NerveError) return error;
    const code = sqlState(error);
    // Message ids are server-generated and unique: a second message with the same id is a bug, not a retry.
    if (code === '23505')
      return new NerveError(ErrorCode.Internal, `message id ${draft?.id ?? '?'} is already stored for tenant ${room.tenant}`, { cause: error });
    // SQLSTATE class 22, data exception: a retry fails the same way, so not `unavailable`.
    if (code.startsWith('22')) return new NerveError(ErrorCode.Internal, `message cannot be stored: ${errorText(error)}`, { cause: error });
    return this.failure('append', error);
  }

  /** The room's log row, created (with a fresh epoch) on first use. */
  private async logRow(room: RoomRef): Promise<LogRow> {
    const row = await this.tables.logRow(this.pool, room.tenant, room.room, newEpoch());
    if (!row) throw new NerveError(ErrorCode.Internal, 'room log row vanished');
    return row;
  }

  async recent(room: RoomRef, limit: number): Promise<RecentResult> {
    this.assertRunning();
    try {
      const state = await this.state_(room);
      const count = clampLimit(limit, this.maxMessages);
      return {
        messages: await this.range(room, state.epoch, Math.max(state.oldest, state.last - count + 1), state.last),
        position: { offset: state.last, epoch: state.epoch },
      };
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

  /** Every row is the archive's here: the hot part of a page is empty, and the log row gives epoch and bounds. */
  async page(room: RoomRef, query: PageQuery): Promise<HistoryPage> {
    this.assertRunning();
    let row: LogRow;
    try {
      row = await this.logRow(room);
    } catch (error) {
      throw error instanceof NerveError ? error : this.failure('read', error);
    }
    const last = Number(row.last_offset);
    return pageAcross(room, { epoch: row.epoch, last, oldest: last + 1, messages: [] }, query, this.archive);
  }

  /** Epoch, newest offset, and the oldest offset replay may return. */
  private async state_(room: RoomRef): Promise<LogState> {
    const row = await this.logRow(room);
    const last = Number(row.last_offset);
    const oldest = this.maxMessages > 0 ? Math.max(1, last - this.maxMessages + 1) : last + 1;
    return { epoch: row.epoch, last, oldest };
  }

  private async range(room: RoomRef, epoch: string, from: number, to: number): Promise<ChatMessage[]> {
    return to < from ? [] : this.tables.range(this.pool, room.tenant, room.room, epoch, from, to);
  }

  health(): LaneHealth {
    const base = { lane: 'history', driver: this.driver };
    if (this.state !== 'running') return { ...base, ok: false, detail: `history is ${this.state}` };
    return this.lastError ? { ...base, ok: true, detail: `last error: ${this.lastError}` } : { ...base, ok: true };
  }

  close(): Promise<void> {
    this.closing ??= Promise.allSettled([...this.roomQueues.values()].map((queue) => queue.drained)).then(() => {
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
    this.lastError = `${what}: ${errorText(error)}`;
    return new NerveError(ErrorCode.Unavailable, `postgres history ${what} failed`, { cause: error });
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `history is ${this.state}`);
  }
}

function sqlState(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : '';
}

/** An error the message itself causes (SQLSTATE class 22, or a duplicate id): the session is fine, the message is not. */
function isDataError(error: unknown): boolean {
  const code = sqlState(error);
  return code.startsWith('22') || code === '23505';
}
