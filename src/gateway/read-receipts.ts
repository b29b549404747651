/**
 * The `read` op and what joins show of read positions (docs/protocol.md,
 * "Read positions"). A member moves their read position forward, the store
 * keeps it cluster-wide (src/receipts), and the room hears of it: at most
 * one `read` push per user and room per `fanoutMs` from this node, carrying
 * the latest position (the first at once, the rest at the interval's end),
 * and the same for the `read.updated` event PostgreSQL is written from.
 */
import type { ChannelNamer } from '../bus/channels.js';
import { errorText } from '../errors.js';
import type { EventLog } from '../events/event-log.js';
import { readUpdated, type EventSource } from '../events/events.js';
import type { History, RoomRef } from '../history/history.js';
import type { Logger } from '../logger.js';
import type { NodeMetrics } from '../metrics.js';
import type { ReadPositions, ReadSnapshot } from '../receipts/receipts.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ChatMessage, StreamPosition } from '../../packages/protocol/src/frames.js';
import { READ_LIMITS, type ReadFrame, type ReadPushFrame } from '../../packages/protocol/src/receipts.js';
import type { Connection } from './connection.js';
import { checkRoom, requireRight } from './failures.js';
import type { LocalRooms } from './local-rooms.js';
import { TokenBucket } from './rate-limit.js';

export interface ReadReceiptsDeps {
  receipts: ReadPositions;
  history: Pick<History, 'recent' | 'since'>;
  local: LocalRooms;
  namer: ChannelNamer;
  events: Pick<EventLog, 'publish'>;
  metrics: NodeMetrics;
  log: Logger;
  maxRoomIdLength: number;
  /** Publish a notice on the room channel to the members with the `presence` right, best effort (publish.ts `announce`). */
  announce: (channel: string, payload: string) => Promise<void>;
  /** Whether the room is large on this node (member-pushes.ts): then no read push is published at all. */
  largeRoom?: (channel: string) => boolean;
  /** Where the room's events happen (room-lifecycle.ts). */
  source: (ref: RoomRef, channel: string) => Promise<EventSource>;
  /** Default READ_LIMITS.fanoutMs; tests shorten it. */
  fanoutMs?: number;
}

/** What `joined` carries of read positions; empty when the store could not be read. */
export interface JoinedReads {
  read?: number;
  unread?: number;
  reads?: Record<string, number>;
}

/** A user's pushes in a room while their interval runs: the latest position not yet sent. */
interface Pending {
  ref: RoomRef;
  channel: string;
  user: string;
  latest: StreamPosition | undefined;
  /** When `latest` was stored (ms): its event is timed at the read, not at the push up to 500 ms later. */
  latestAt: number;
  timer: NodeJS.Timeout;
}

export class ReadReceipts {
  readonly #buckets = new WeakMap<Connection, TokenBucket>();
  readonly #pending = new Map<string, Pending>();
  readonly #fanoutMs: number;

  constructor(private readonly deps: ReadReceiptsDeps) {
    this.#fanoutMs = deps.fanoutMs ?? READ_LIMITS.fanoutMs;
  }

  async read(conn: Connection, frame: ReadFrame): Promise<void> {
    checkRoom(frame.room, this.deps.maxRoomIdLength);
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'join the room to mark it read');
    requireRight(conn, frame.room, 'join');
    const retryAfterMs = this.#bucket(conn).take();
    if (retryAfterMs > 0) throw new NerveError(ErrorCode.RateLimited, 'too many read requests', { retryAfterMs });
    const ref: RoomRef = { tenant: conn.tenant, room: frame.room };
    const channel = this.deps.namer.room(conn.tenant, frame.room);
    const head = await this.#head(ref, channel, frame);
    if (frame.epoch !== undefined && frame.epoch !== head.epoch) {
      throw new NerveError(ErrorCode.EpochMismatch, 'the room log is in another epoch now: join again for its offsets');
    }
    // Never more than the log holds: a position past its newest message would hide the next ones.
    const wanted: StreamPosition = { offset: Math.min(frame.offset, head.offset), epoch: head.epoch };
    // Taken before the store's write, which the PostgreSQL driver stamps later: the event is never newer than its row.
    const at = Date.now();
    const { position, advanced } = await this.deps.receipts.advance(ref, conn.user, wanted);
    conn.answer({ op: 'read', rid: frame.rid, room: frame.room, offset: position.offset, epoch: position.epoch });
    if (advanced) this.#push(ref, channel, conn.user, position, at);
  }

  /** The caller's and (while few) everyone's stored positions; undefined when the store fails, which never fails a join. */
  async snapshot(ref: RoomRef, user: string): Promise<ReadSnapshot | undefined> {
    try {
      return await this.deps.receipts.read(ref, user, READ_LIMITS.listMax);
    } catch (error) {
      this.deps.metrics.errors.inc({ code: 'receipts_unavailable' });
      this.deps.log.warn({ err: errorText(error), tenant: ref.tenant, room: ref.room }, 'read positions not read');
      return undefined;
    }
  }

  /**
   * `read`, `unread` and `reads` of a `joined` answer at `position` whose
   * `history` is `messages`. Counting needs the messages after `read`: the
   * answer's when they reach back that far, else one more history read of
   * at most READ_LIMITS.unreadScan entries.
   */
  async joined(
    ref: RoomRef,
    user: string,
    snapshot: ReadSnapshot | undefined,
    position: StreamPosition,
    messages: ChatMessage[],
    seesOthers: boolean,
  ): Promise<JoinedReads> {
    if (!snapshot) return {};
    const own = snapshot.own;
    // A position of another epoch means nothing in this one.
    const read = own && own.epoch === position.epoch ? Math.min(own.offset, position.offset) : 0;
    let unread = read < position.offset ? countUnread(messages, read, position.offset, user) : 0;
    const first = messages[0];
    // Only when the answer's history neither reaches back to `read` nor already holds the cap (a join storm of
    // users far behind then costs no second read each).
    if (read < position.offset && unread < READ_LIMITS.unreadMax && (!first || first.offset > read + 1)) {
      try {
        const more = await this.deps.history.since(ref, { offset: read, epoch: position.epoch }, READ_LIMITS.unreadScan);
        if (more.position.epoch === position.epoch) unread = Math.max(unread, countUnread(more.messages, read, position.offset, user));
      } catch (error) {
        this.deps.log.warn({ err: errorText(error), tenant: ref.tenant, room: ref.room }, 'unread count read failed');
      }
    }
    const fields: JoinedReads = { read, unread };
    if (seesOthers && snapshot.all) {
      const reads: Record<string, number> = {};
      for (const [other, at] of snapshot.all) if (other !== user && at.epoch === position.epoch) reads[other] = at.offset;
      fields.reads = reads;
    }
    return fields;
  }

  /** Send every push still waiting now (drain), and stop the timers. */
  flush(): void {
    for (const [key, pending] of this.#pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(key);
      if (pending.latest) this.#emit(pending.ref, pending.channel, pending.user, pending.latest, pending.latestAt);
    }
  }

  /** The log's current epoch and newest offset: this node's delivered cursor when it answers, else a history read. */
  async #head(ref: RoomRef, channel: string, frame: ReadFrame): Promise<StreamPosition> {
    const cursor = this.deps.local.get(channel)?.chat;
    if (cursor?.known && !cursor.recovering && frame.offset <= cursor.offset && (frame.epoch === undefined || frame.epoch === cursor.epoch)) {
      return { offset: cursor.offset, epoch: cursor.epoch };
    }
    return (await this.deps.history.recent(ref, 0)).position;
  }

  /** The first push of an interval goes at once; later ones wait for its end, and only the latest goes. */
  #push(ref: RoomRef, channel: string, user: string, position: StreamPosition, at: number): void {
    const key = `${channel}\u0000${user}`;
    const pending = this.#pending.get(key);
    if (pending) {
      pending.latest = position;
      pending.latestAt = at;
      return;
    }
    this.#emit(ref, channel, user, position, at);
    this.#arm(key, { ref, channel, user, latest: undefined, latestAt: 0, timer: undefined as unknown as NodeJS.Timeout });
  }

  #arm(key: string, pending: Pending): void {
    pending.timer = setTimeout(() => {
      const latest = pending.latest;
      if (!latest) {
        this.#pending.delete(key);
        return;
      }
      pending.latest = undefined;
      this.#emit(pending.ref, pending.channel, pending.user, latest, pending.latestAt);
      this.#arm(key, pending);
    }, this.#fanoutMs);
    pending.timer.unref();
    this.#pending.set(key, pending);
  }

  /**
   * The push to the room and the event for PostgreSQL; failures are logged and counted, never the reader's.
   * The event carries the time of the read (`at`): PostgreSQL's upsert lets a position of another epoch
   * replace the row only when it is later (src/postgres/read-positions.ts), so a push held back by the
   * conflation must not look newer than a read made meanwhile on another node.
   */
  #emit(ref: RoomRef, channel: string, user: string, position: StreamPosition, at: number): void {
    const frame: ReadPushFrame = { op: 'read', room: ref.room, user, offset: position.offset, epoch: position.epoch, ts: Date.now() };
    // A large room's members get no read pushes; not publishing spares every node the bus traffic and the parse.
    if (this.deps.largeRoom?.(channel) !== true) void this.deps.announce(channel, encodeFrame(frame));
    void (async () => {
      try {
        const source = { ...(await this.deps.source(ref, channel)), ts: at };
        await this.deps.events.publish(readUpdated(source, { user, offset: position.offset, epoch: position.epoch }));
      } catch (error) {
        this.deps.metrics.drops.inc({ reason: 'event_unavailable' });
        this.deps.log.error({ err: errorText(error), type: 'read.updated' }, 'lifecycle event not accepted');
      }
    })();
  }

  #bucket(conn: Connection): TokenBucket {
    let bucket = this.#buckets.get(conn);
    if (!bucket) {
      bucket = new TokenBucket(READ_LIMITS.perSecond, READ_LIMITS.burst);
      this.#buckets.set(conn, bucket);
    }
    return bucket;
  }
}

/**
 * The unread rule (docs/protocol.md, "Read positions"): chat messages with
 * an offset in (read, newest], not sent by `user`, not an edit, delete or
 * reaction entry; at most READ_LIMITS.unreadMax.
 */
export function countUnread(messages: readonly ChatMessage[], read: number, newest: number, user: string): number {
  let unread = 0;
  for (const message of messages) {
    if (message.offset <= read || message.offset > newest || message.action !== undefined || message.from === user) continue;
    unread += 1;
    if (unread >= READ_LIMITS.unreadMax) break;
  }
  return unread;
}
