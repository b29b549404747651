/**
 * The room session seam: one life of a room, from its first member to its
 * last, with each participant's time in it; the gateway gives every
 * lifecycle event of a room its `session` id and fills `room.ended`
 * (docs/events.md). Presence decides once, cluster-wide, when a room starts,
 * a user joins or leaves and the room empties, so each call is made by one
 * node; a store only makes each call atomic. Times are the callers' `now`
 * (node clocks, which must agree to well within a second). Implementations:
 * memory.ts, redis.ts; test/conformance/sessions.ts runs against both.
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
  /**
   * Begin the room's session and return its id. One created less than
   * `START_SKEW_MS` before `now` is kept (a join on another node got there
   * first; the start time becomes the earlier); an older one is a leftover
   * whose `end` never ran, and is replaced.
   */
  start(room: RoomRef, now: number): Promise<string>;
  /** The id of the room's session, creating one (starting now) when there is none. */
  current(room: RoomRef): Promise<string>;
  /** Start a stay of `user` (creating the session if needed); a user already present is not counted twice. */
  joined(room: RoomRef, user: string, now: number): Promise<string>;
  /** End the user's stay: their total time in the session, ms; undefined when the session or user is unknown. Leaving twice adds no time. */
  left(room: RoomRef, user: string, now: number): Promise<number | undefined>;
  /** Close and forget the session atomically; open stays count up to `now`. With none, an empty one is ended. */
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
