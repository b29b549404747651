/**
 * The call participation seam: who is in which call of a room, across the
 * cluster, timed by the server so billing never trusts a client for a
 * duration (docs/events.md, `call.started` / `call.ended`). Kept per
 * connection, reported per user: a user with two connections in a call is
 * one participant. Every call takes the caller's `now`; the store decides
 * atomically which join starts a call and which leave (or expiry) ends it,
 * so each of those is reported to exactly one caller in the cluster.
 * A connection's entry carries its last-seen time, refreshed by its node;
 * one not refreshed for `ttlMs` has left at that last-seen time (its node
 * died or was cut off). Implementations: memory.ts, redis.ts;
 * test/conformance/calls.ts runs against both.
 */
import type { ParticipantTime } from '../events/events.js';
import type { RoomRef } from '../history/history.js';
import type { LaneHealth } from '../lanes.js';

/** One call of one room: `call` is the client's id (room id syntax). */
export interface CallRef extends RoomRef {
  call: string;
}

/** One life of a call, from its first participant to its last. */
export interface CallStart {
  /** Id of this life of the call (a UUID); `callSession` in the events. */
  id: string;
  /** ms since epoch: the first join. */
  startedAt: number;
  /** The user whose join started it. */
  startedBy: string;
}

export interface EndedCall {
  id: string;
  startedAt: number;
  /** The last leave, or the last-seen time of the last participants when they expired; never before `startedAt`. */
  endedAt: number;
  /** Every user who was in the call, with their time in it (connections merged). */
  participants: ParticipantTime[];
  /** Most users in the call at once. */
  peakParticipants: number;
}

export interface CallJoinResult {
  /** The connection was not in the call before. */
  joined: boolean;
  /** This join started the call. */
  started?: CallStart;
  /** An earlier life of the call, whose participants had all expired, ended on the way. */
  ended?: EndedCall;
}

export interface CallLeaveResult {
  /** The connection was in the call. */
  left: boolean;
  /** The call had no participant left: it ended (reported to this caller only). */
  ended?: EndedCall;
}

export interface CallRefreshResult {
  /** Connections given that the store no longer has (they expired): join them again to count them. */
  missing: string[];
  /** The call's other participants had all expired, and so had these: it ended. */
  ended?: EndedCall;
}

export interface SweptCall {
  ref: CallRef;
  ended: EndedCall;
}

export interface CallStore {
  readonly driver: string;
  /** Connect (Redis); idempotent. Calls before `open` fail with `unavailable`. */
  open(): Promise<void>;
  /** Add connection `conn` of `user` to the call (starting it when it has no participant); a known connection is only refreshed. */
  join(ref: CallRef, entry: { user: string; conn: string }, now: number): Promise<CallJoinResult>;
  /** Remove a connection; the call ends when it was the last. Unknown connection or call: `{ left: false }`. */
  leave(ref: CallRef, conn: string, now: number): Promise<CallLeaveResult>;
  /** Mark these connections (all of one node) seen at `now`. */
  refresh(ref: CallRef, conns: string[], now: number): Promise<CallRefreshResult>;
  /** End the calls whose participants all expired by `now` (nobody refreshes them any more); each is returned to one caller only. */
  sweep(now: number): Promise<SweptCall[]>;
  health(): LaneHealth;
  /** Idempotent. */
  close(): Promise<void>;
}

export interface CallStoreOptions {
  /** A connection not refreshed for this long has left, ms (at its last-seen time). Default 10000, as presence. */
  ttlMs?: number;
}

export const DEFAULT_CALL_TTL_MS = 10_000;
/** Lifetime of a call record nothing touches (every node of it dead and no sweep since): a day. */
export const CALL_KEY_TTL_MS = 24 * 60 * 60 * 1000;
