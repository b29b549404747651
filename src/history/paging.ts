/**
 * One page of a room's chat across the hot store (memory ring, Redis
 * stream) and the archive (the PostgreSQL chat tables), under one cursor:
 * the offset. The hot store answers first with the contiguous run it holds
 * below `before`; only below the oldest offset it holds does the archive
 * answer, so the two never overlap and meet without a gap. docs/protocol.md,
 * `history`.
 */
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { HISTORY_PAGE_LIMITS, type ChatMessage } from '../../packages/protocol/src/frames.js';
import type { HistoryPage, PageQuery, RoomRef } from './history.js';
import { clampLimit } from './recovery.js';

/** What a hot store read of one page saw, in one atomic step. */
export interface HotPage {
  epoch: string;
  /** Newest readable offset (0 = none). */
  last: number;
  /** Oldest offset the hot store still holds; `last + 1` when it holds none. */
  oldest: number;
  /** The newest `limit` it holds with `offset < before`, oldest first: a run without holes. */
  messages: ChatMessage[];
}

/** Messages the hot store no longer holds (src/history/archive.ts reads them from PostgreSQL). */
export interface ChatArchive {
  /** The newest `limit` stored messages of the room's `epoch` with `offset < before`, oldest first. */
  older(room: RoomRef, epoch: string, before: number, limit: number): Promise<ChatMessage[]>;
}

/** A caller's page size as the hot stores read it. */
export function pageLimit(query: PageQuery): number {
  return clampLimit(query.limit, HISTORY_PAGE_LIMITS.max);
}

/** The highest offset a page may hold: below `before`, at most the newest. */
export function pageTop(query: PageQuery, last: number): number {
  return query.before === undefined ? last : Math.min(last, query.before - 1);
}

/**
 * The page: the hot run, topped up from the archive below it. `more` is
 * claimed only from what was seen: an older message in the hot store, or
 * one row beyond the page in the archive (the archive is asked for one more
 * than it must give). Without an archive, a hot store exhausted is the end.
 */
export async function pageAcross(room: RoomRef, hot: HotPage, query: PageQuery, archive: ChatArchive | undefined): Promise<HistoryPage> {
  const { epoch, messages } = hot;
  if (query.epoch !== undefined && query.epoch !== epoch) {
    throw new NerveError(ErrorCode.EpochMismatch, 'the room log is in another epoch now: your offsets mean nothing in it');
  }
  const first = messages[0]?.offset;
  // A hot run that starts above the oldest offset held was cut by the limit: the hot store has more.
  if (first !== undefined && first > hot.oldest) return { messages, more: true, epoch };
  const top = pageTop(query, hot.last);
  // Nothing taken though the hot store holds some below `before`: only a limit of 0 does that.
  if (first === undefined && top >= hot.oldest) return { messages, more: true, epoch };
  // Below this offset the hot store holds nothing of this page.
  const boundary = first ?? Math.min(hot.oldest, top + 1);
  if (!archive || boundary <= 1) return { messages, more: false, epoch };
  const need = Math.max(0, pageLimit(query) - messages.length);
  const rows = await archive.older(room, epoch, boundary, need + 1);
  const older = rows.slice(Math.max(0, rows.length - need));
  return { messages: older.length > 0 ? [...older, ...messages] : messages, more: rows.length > need, epoch };
}
