/**
 * The replay seam: a per-room chat log with offsets and an epoch. Offsets
 * start at 1 and grow by one per stored message within an epoch; the epoch
 * changes whenever the log is lost or reset. Reads are bounded by `limit`.
 * Implementations: memory.ts, redis-streams.ts, postgres.ts and
 * intake-history.ts, each run through test/conformance/history.ts.
 */
import type { BusEnvelope } from '../bus/bus.js';
import type { LaneHealth } from '../lanes.js';
import type { ChatMessage, StreamPosition } from '../../packages/protocol/src/frames.js';

export interface RoomRef {
  tenant: string;
  room: string;
}

/** What the gateway hands to `append`: everything but the position. */
export type ChatDraft = Omit<ChatMessage, 'offset' | 'epoch'>;

export interface AppendResult {
  message: ChatMessage;
  /** True when `cmid` matched an earlier message: nothing was stored or published. */
  duplicate: boolean;
}

export interface RecentResult {
  /** Oldest first. */
  messages: ChatMessage[];
  position: StreamPosition;
}

export interface RecoveryResult extends RecentResult {
  /**
   * True when `messages` are exactly those after the asked position (none
   * missing). False when the position is from another epoch, in the future,
   * trimmed away, or further back than the limit; `messages` are then the
   * most recent ones, for a client that reloads.
   */
  recovered: boolean;
}

/** A page of older chat (`History.page`; the rule in paging.ts). */
export interface PageQuery {
  /** Only messages with `offset < before`; absent = the newest. */
  before?: number | undefined;
  /** Most messages in the page; clamped to 0–100 (HISTORY_PAGE_LIMITS.max). */
  limit: number;
  /** The epoch the caller's offsets belong to; another one is refused with `epoch_mismatch`. */
  epoch?: string | undefined;
}

export interface HistoryPage {
  /** Oldest first. */
  messages: ChatMessage[];
  /** True only when a stored message older than the first of `messages` is known to exist. */
  more: boolean;
  /** The room log's current epoch. */
  epoch: string;
}

/** Publishes the stored message; called by `append` inside its atomic step. */
export interface AppendTarget {
  channel: string;
  envelope(message: ChatMessage): BusEnvelope;
}

export interface History {
  readonly driver: string;
  start(): Promise<void>;
  /**
   * Store the message and publish it on the room channel as one atomic step
   * (memory: synchronously; Redis: one script), so offsets follow the order
   * in which every node delivers. A `cmid` seen again for the room and sender
   * within the idempotency window answers the original with `duplicate: true`
   * and stores and publishes nothing.
   */
  append(room: RoomRef, draft: ChatDraft, target: AppendTarget): Promise<AppendResult>;
  /** The newest `limit` messages. */
  recent(room: RoomRef, limit: number): Promise<RecentResult>;
  /** The messages after `position`, at most `limit`. */
  since(room: RoomRef, position: StreamPosition, limit: number): Promise<RecoveryResult>;
  /**
   * One page of older chat (the `history` op): the newest `limit` messages
   * below `before`, from the hot store and then, below the oldest offset it
   * holds, from the archive when one is configured (paging.ts). A `query.epoch`
   * other than the log's is refused with `epoch_mismatch`.
   */
  page(room: RoomRef, query: PageQuery): Promise<HistoryPage>;
  health(): LaneHealth;
  close(): Promise<void>;
}
