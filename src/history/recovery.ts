/**
 * The recovery rule, written once: given a room log's state and a client's
 * position, may the client be given exactly the messages it missed? The
 * cases are tabled in docs/protocol.md (Resume and idempotency). Offset 0
 * means "seen nothing", so the whole log is what was missed, whichever epoch.
 * The Redis Streams history runs the same rule in its read script
 * (redis-scripts.ts); the conformance suite checks that they agree.
 */
import { randomBytes } from 'node:crypto';
import type { StreamPosition } from '../../packages/protocol/src/frames.js';
import { offsetStep } from '../../packages/protocol/src/positions.js';

export interface LogState {
  epoch: string;
  /** Offset of the newest message ever stored in this epoch (0 = none). */
  last: number;
  /** Offset of the oldest message still kept; `last + 1` when none is kept. */
  oldest: number;
}

export function canRecover(log: LogState, position: StreamPosition, limit: number): boolean {
  const sameEpoch = position.epoch === log.epoch;
  if (sameEpoch && position.offset > log.last) return false;
  // The oldest kept message must be one the client saw or the next one: else the first it missed was trimmed away.
  if (offsetStep(position.offset, sameEpoch, log.oldest) === 'gap') return false;
  return log.last - position.offset <= limit;
}

/** A caller's `limit` as a safe non-negative integer (NaN and negatives read as 0). */
export function clampLimit(limit: number, max: number): number {
  if (!Number.isFinite(limit) || limit <= 0) return 0;
  return Math.min(Math.floor(limit), max);
}

/** A fresh epoch: 16 hex characters, so it is safe inside JSON and Lua patterns alike. */
export function newEpoch(): string {
  return randomBytes(8).toString('hex');
}
