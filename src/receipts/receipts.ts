/**
 * The read position seam: per user per room, the chat offset up to which
 * the user has read, in one epoch of the room log (docs/protocol.md, "Read
 * positions"). A position only moves forward within an epoch; one of
 * another epoch replaces it (the gateway has checked that the new one is
 * the log's current epoch). Implementations: memory.ts, redis.ts and, for a
 * cluster without Redis, postgres.ts; test/conformance/receipts.ts runs
 * against them. The durable copy is in PostgreSQL, written from
 * `read.updated` events by the chat-store worker; with postgres.ts the
 * gateway writes the same table first. Both use one forward-only upsert
 * (src/postgres/read-positions.ts), so the worker's write then changes nothing.
 */
import type { RoomRef } from '../history/history.js';
import type { LaneHealth } from '../lanes.js';
import type { StreamPosition } from '../../packages/protocol/src/frames.js';

export interface AdvanceResult {
  /** The stored position after the call: the one given, or the later one already stored. */
  position: StreamPosition;
  /** Whether this call moved it. */
  advanced: boolean;
}

export interface ReadSnapshot {
  /** The user's stored position, of whatever epoch. */
  own: StreamPosition | undefined;
  /** Every user's position (the user's own included), when the room has at most `listMax` of them; else undefined. */
  all: Map<string, StreamPosition> | undefined;
}

export interface ReadPositions {
  readonly driver: string;
  /** Connect (Redis); idempotent. Calls before `open` fail with `unavailable`. */
  open(): Promise<void>;
  /** Store `position` for the user unless a later one of the same epoch is stored; atomic. */
  advance(room: RoomRef, user: string, position: StreamPosition): Promise<AdvanceResult>;
  /** The user's position, and everyone's while the room has at most `listMax` (0: never). One round trip. */
  read(room: RoomRef, user: string, listMax: number): Promise<ReadSnapshot>;
  health(): LaneHealth;
  /** Idempotent. */
  close(): Promise<void>;
}

/** Default lifetime of a room's read positions on Redis without any `read`: 30 days (PostgreSQL keeps them longer). */
export const DEFAULT_READ_TTL_MS = 30 * 24 * 60 * 60 * 1000;

/** A position as stored in a Redis hash field or a memory map: `offset|epoch` (the offset is digits, so the first `|` splits). */
export function encodePosition(position: StreamPosition): string {
  return `${position.offset}|${position.epoch}`;
}

export function decodePosition(text: string): StreamPosition | undefined {
  const bar = text.indexOf('|');
  const offset = Number(text.slice(0, bar));
  if (bar < 1 || !Number.isSafeInteger(offset)) return undefined;
  return { offset, epoch: text.slice(bar + 1) };
}

/** The rule both drivers apply: whether `next` replaces `stored`. */
export function advances(stored: StreamPosition | undefined, next: StreamPosition): boolean {
  return stored === undefined || stored.epoch !== next.epoch || next.offset > stored.offset;
}
