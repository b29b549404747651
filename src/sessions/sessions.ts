/**
 * The room session seam: one life of a room, from its first member to its
 * last, with each participant's time in it. The gateway uses it to give
 * every lifecycle event of a room its `session` id and to fill `room.ended`
 * (docs/events.md). Implementations: memory.ts (one process), redis.ts (a
 * cluster: every node reads and writes the same session).
 *
 * Presence decides cluster-wide, exactly once, when a room starts, when a
 * user joins or leaves and when the room empties, so each of those calls
 * is made by exactly one node; the store only has to make each call atomic.
 *
 * Contract (test/conformance/sessions.ts runs it against every driver):
 * - `start(room, now)` begins the room's session and returns its id. A
 *   session created less than `START_SKEW_MS` before `now` is kept (a join
 *   on another node that got there before this start opened it; its start
 *   time becomes the earlier of the two). An older one is a leftover whose
 *   `end` never ran (a node crashed in between): it is replaced.
 * - `current(room)` returns the id of the room's session, creating one
 *   (starting now) when there is none.
 * - `joined(room, user, now)` starts a stay of `user` (creating the session
 *   if needed) and returns the session id. A user already present is not
 *   counted twice. `peakParticipants` is the most users present at once.
 * - `left(room, user, now)` ends the user's stay and returns their total
 *   time in the session, ms; `undefined` when the session or the user is
 *   unknown. Leaving twice does not add time.
 * - `end(room, now)` atomically closes and forgets the session and returns
 *   its summary; open stays count up to `now`. With no session, a new empty
 *   one is ended (duration 0, no participants).
 * - Times are the callers' `now` (node clocks, which must agree to well
 *   within a second, as for presence).
 */
import type { ParticipantTime } from '../events/events.js';
import type { RoomRef } from '../history/history.js';
import type { LaneHealth } from '../lanes.js';

export interface EndedSession {
  id: string;
  /** ms since epoch when the session started. */
  startedAt: number;
  /** `now` of `end` minus `startedAt`, never negative. */
  durationMs: number;
  /** Everyone who was in the session, with their time in it. */
  participants: ParticipantTime[];
  /** Most users present at once. */
  peakParticipants: number;
}

export interface RoomSessions {
  readonly driver: string;
  /** Connect (Redis); idempotent. Calls before `open` fail with `unavailable`. */
  open(): Promise<void>;
  start(room: RoomRef, now: number): Promise<string>;
  current(room: RoomRef): Promise<string>;
  joined(room: RoomRef, user: string, now: number): Promise<string>;
  left(room: RoomRef, user: string, now: number): Promise<number | undefined>;
  end(room: RoomRef, now: number): Promise<EndedSession>;
  health(): LaneHealth;
  /** Idempotent. */
  close(): Promise<void>;
}

export interface RoomSessionsOptions {
  /** Clock for `current` (the other calls take `now`), ms since epoch. Injected by tests. Default `Date.now`. */
  now?: () => number;
}

/**
 * How recent a session may be and still be the one `start` begins, ms: a
 * join on another node may reach the store a moment before the start that
 * presence ordered first. Well above the round trips and clock skew between
 * nodes; well below any real session's length.
 */
export const START_SKEW_MS = 2000;

/** Default lifetime of a Redis session record without any update: a day. */
export const DEFAULT_SESSION_TTL_MS = 24 * 60 * 60 * 1000;
