/**
 * In-process History: one bounded ring per room, for a single node and for
 * unit tests. Storing and publishing are one synchronous step (no `await`
 * between them), so in one process every subscriber sees offsets in order.
 * Memory is bounded by the options below: per ring, per idle room (an evicted
 * log's next use starts a new epoch, so a resuming client is told to resync
 * rather than given a wrong answer) and in number of rooms.
 */
import type { Bus } from '../bus/bus.js';
import { escapeComponent } from '../bus/channels.js';
import type { LaneHealth } from '../lanes.js';
import { ConfigError } from '../config/errors.js';
import { integerAtLeast } from '../config/validate.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ChatMessage, StreamPosition } from '../../packages/protocol/src/frames.js';
import type { AppendResult, AppendTarget, ChatDraft, History, HistoryPage, PageQuery, RecentResult, RecoveryResult, RoomRef } from './history.js';
import { pageAcross, pageLimit, pageTop, type ChatArchive } from './paging.js';
import { canRecover, clampLimit, newEpoch } from './recovery.js';

export interface MemoryHistoryOptions {
  /** Bus on which `append` publishes each stored message. Required. */
  bus: Bus;
  /** Chat messages kept per room; older ones are trimmed. 0 keeps none (offsets still advance). Default 1000. */
  maxMessages?: number;
  /** How long a repeated (room, sender, cmid) is recognised as a duplicate, ms. 0 disables. Default 120000. */
  idempotencyWindowMs?: number;
  /** Most messages `since` returns as a recovery; more missed means `recovered: false`. Default 1000. */
  recoveryLimit?: number;
  /** A room log with no append (or creation) for this long is evicted, ms. Default 86400000 (24 h). */
  roomIdleMs?: number;
  /** Most room logs kept; creating one more evicts the least recently appended. Default 10000. */
  maxRooms?: number;
  /** Clock, ms since epoch. Injected by tests. Default `Date.now`. */
  now?: () => number;
  /** Where `page` reads what the ring no longer holds (the PostgreSQL chat tables). Default none: paging ends with the ring. */
  archive?: ChatArchive | undefined;
}

interface IdempotencyEntry {
  message: ChatMessage;
  expiresAt: number;
}

interface RoomLog {
  epoch: string;
  /** Offset of the newest stored message; 0 before the first. */
  last: number;
  /** Message with offset `o` sits at index `(o - 1) % capacity`. */
  ring: Array<ChatMessage | undefined>;
  lastActive: number;
  /** Insertion order is expiry order (one window for all), so expiry pops from the front. */
  idempotency: Map<string, IdempotencyEntry>;
}

export class MemoryHistory implements History {
  readonly driver = 'memory';
  private readonly bus: Bus;
  private readonly maxMessages: number;
  private readonly idempotencyWindowMs: number;
  private readonly recoveryLimit: number;
  private readonly roomIdleMs: number;
  private readonly maxRooms: number;
  private readonly now: () => number;
  private readonly archive: ChatArchive | undefined;
  /** Insertion order is activity order: a room is re-inserted on each append. */
  private readonly rooms = new Map<string, RoomLog>();
  private state: 'idle' | 'running' | 'closed' = 'idle';
  private closing: Promise<void> | undefined;

  constructor(options: MemoryHistoryOptions) {
    if (!options || typeof options.bus !== 'object' || options.bus === null) {
      throw new ConfigError('bus', 'a Bus instance', options?.bus);
    }
    this.bus = options.bus;
    this.maxMessages = integerAtLeast('maxMessages', options.maxMessages ?? 1000, 0);
    this.idempotencyWindowMs = integerAtLeast('idempotencyWindowMs', options.idempotencyWindowMs ?? 120_000, 0);
    this.recoveryLimit = integerAtLeast('recoveryLimit', options.recoveryLimit ?? 1000, 1);
    this.roomIdleMs = integerAtLeast('roomIdleMs', options.roomIdleMs ?? 86_400_000, 1);
    this.maxRooms = integerAtLeast('maxRooms', options.maxRooms ?? 10_000, 1);
    this.now = options.now ?? Date.now;
    this.archive = options.archive;
  }

  async start(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'history is closed');
    this.state = 'running';
  }

  async append(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult> {
    this.assertRunning();
    const now = this.now();
    const log = this.logFor(room, now);
    const idempotencyKey = draft.cmid === undefined ? undefined : JSON.stringify([draft.from, draft.cmid]);
    if (idempotencyKey !== undefined) {
      expireIdempotency(log, now);
      const seen = log.idempotency.get(idempotencyKey);
      if (seen) return { message: seen.message, duplicate: true };
    }
    // A down bus fails the append before anything is stored: the client retries.
    const busHealth = this.bus.health();
    if (!busHealth.ok) throw new NerveError(ErrorCode.BusUnavailable, `bus is down: ${busHealth.detail ?? busHealth.driver}`);

    const offset = log.last + 1;
    const message: ChatMessage = { ...draft, offset, epoch: log.epoch };
    // Built before storing: a throwing envelope builder leaves the log untouched.
    const envelope = target.envelope(message);

    log.last = offset;
    if (this.maxMessages > 0) log.ring[(offset - 1) % this.maxMessages] = message;
    log.lastActive = now;
    const key = roomKey(room);
    this.rooms.delete(key);
    this.rooms.set(key, log);
    if (idempotencyKey !== undefined && this.idempotencyWindowMs > 0) {
      log.idempotency.set(idempotencyKey, { message, expiresAt: now + this.idempotencyWindowMs });
    }
    // No await between storing and this call: the memory bus delivers inside
    // it, so no other append can slip between store and publish. Should the
    // publish still fail, the message stays stored (it is replayed on resume)
    // and the caller learns of it; a retry with the same cmid is acked as a duplicate.
    try {
      await this.bus.publish(target.channel, envelope);
    } catch (error) {
      throw new NerveError(ErrorCode.BusUnavailable, 'message stored but not published', { cause: error });
    }
    return { message, duplicate: false };
  }

  async recent(room: RoomRef, limit: number): Promise<RecentResult> {
    this.assertRunning();
    const log = this.logFor(room, this.now());
    const count = clampLimit(limit, this.maxMessages);
    return { messages: this.newest(log, count), position: positionOf(log) };
  }

  async since(room: RoomRef, position: StreamPosition, limit: number): Promise<RecoveryResult> {
    this.assertRunning();
    const log = this.logFor(room, this.now());
    const bound = clampLimit(limit, this.recoveryLimit);
    const state = { epoch: log.epoch, last: log.last, oldest: this.oldestKept(log) };
    if (canRecover(state, position, bound)) {
      return { messages: this.range(log, position.offset + 1, log.last), position: positionOf(log), recovered: true };
    }
    return { messages: this.newest(log, bound), position: positionOf(log), recovered: false };
  }

  async page(room: RoomRef, query: PageQuery): Promise<HistoryPage> {
    this.assertRunning();
    const log = this.logFor(room, this.now());
    const oldest = this.oldestKept(log);
    const top = pageTop(query, log.last);
    const from = Math.max(oldest, top - pageLimit(query) + 1);
    const messages = from <= top ? this.range(log, from, top) : [];
    return pageAcross(room, { epoch: log.epoch, last: log.last, oldest, messages }, query, this.archive);
  }

  health(): LaneHealth {
    const ok = this.state === 'running';
    return ok ? { lane: 'history', driver: this.driver, ok } : { lane: 'history', driver: this.driver, ok, detail: `history is ${this.state}` };
  }

  /** Sizes, for tests and the admin page: proof that memory stays bounded. */
  stats(): { rooms: number; messages: number; idempotencyEntries: number } {
    let messages = 0;
    let idempotencyEntries = 0;
    for (const log of this.rooms.values()) {
      messages += log.last - this.oldestKept(log) + 1;
      idempotencyEntries += log.idempotency.size;
    }
    return { rooms: this.rooms.size, messages, idempotencyEntries };
  }

  close(): Promise<void> {
    this.closing ??= Promise.resolve().then(() => {
      this.state = 'closed';
      this.rooms.clear();
    });
    return this.closing;
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `history is ${this.state}`);
  }

  /**
   * The room's log, created on first use. Reads create it too, so the
   * position a `join` reports keeps its epoch until the log is evicted.
   */
  private logFor(room: RoomRef, now: number): RoomLog {
    this.evictIdle(now);
    const key = roomKey(room);
    const existing = this.rooms.get(key);
    if (existing) return existing;
    while (this.rooms.size >= this.maxRooms) {
      const oldest = this.rooms.keys().next();
      if (oldest.done) break;
      this.rooms.delete(oldest.value);
    }
    const log: RoomLog = { epoch: newEpoch(), last: 0, ring: [], lastActive: now, idempotency: new Map() };
    this.rooms.set(key, log);
    return log;
  }

  /** Rooms are in activity order, so idle ones are at the front: amortized O(1). */
  private evictIdle(now: number): void {
    for (const [key, log] of this.rooms) {
      if (now - log.lastActive < this.roomIdleMs) break;
      this.rooms.delete(key);
    }
  }

  private oldestKept(log: RoomLog): number {
    return Math.max(1, log.last - this.maxMessages + 1);
  }

  private newest(log: RoomLog, count: number): ChatMessage[] {
    return this.range(log, Math.max(this.oldestKept(log), log.last - count + 1), log.last);
  }

  /** Messages `from..to` inclusive, all of which must still be kept. */
  private range(log: RoomLog, from: number, to: number): ChatMessage[] {
    const messages: ChatMessage[] = [];
    for (let offset = from; offset <= to; offset += 1) {
      const message = log.ring[(offset - 1) % this.maxMessages];
      if (message) messages.push(message);
    }
    return messages;
  }
}

function expireIdempotency(log: RoomLog, now: number): void {
  for (const [key, entry] of log.idempotency) {
    if (entry.expiresAt > now) break;
    log.idempotency.delete(key);
  }
}

function roomKey(room: RoomRef): string {
  return `${escapeComponent(room.tenant)}:${escapeComponent(room.room)}`;
}

function positionOf(log: RoomLog): { offset: number; epoch: string } {
  return { offset: log.last, epoch: log.epoch };
}
