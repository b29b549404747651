/**
 * Presence frames: who is in a room and the state each member chose
 * (docs/protocol.md, `presence`, "Presence state", "Large rooms"), with the limits the
 * server applies to that state.
 */
import type { RequestId } from './frame-basics.js';

export interface PresenceFrame {
  op: 'presence';
  rid: RequestId;
  room: string;
}

/**
 * A member's presence state: a JSON object the app chooses (name, avatar,
 * status, "in a call"), at most `PRESENCE_LIMITS.stateBytes` as JSON by
 * default. Keys of the token's `presence` claim override the client's.
 */
export type PresenceState = Record<string, unknown>;

/**
 * Defaults of the presence limits (docs/protocol.md, "Presence state"): the
 * largest state as JSON text, and the `presence_set` token bucket per
 * connection and room.
 */
export const PRESENCE_LIMITS = { stateBytes: 1024, setBurst: 10, setPerSecond: 2 } as const;

/** Replace your presence state in a joined room; the room's members get `member_updated`. */
export interface PresenceSetFrame {
  op: 'presence_set';
  rid: RequestId;
  room: string;
  state: PresenceState;
}

export interface Member {
  user: string;
  /** Server time (ms since epoch) when the user's first connection joined. */
  since: number;
  /** The member's presence state, when one was set (by a connection of theirs or their token's `presence` claim). */
  state?: PresenceState;
}

export interface MemberJoinedFrame {
  op: 'member_joined';
  room: string;
  user: string;
  ts: number;
  /** The room's member count right after this join. */
  count?: number;
  /** The member's presence state, when the join set one. */
  state?: PresenceState;
}

export interface MemberLeftFrame {
  op: 'member_left';
  room: string;
  user: string;
  ts: number;
  /** The room's member count right after this leave. */
  count?: number;
}

/** A member's presence state changed (`presence_set`); conflated: a reader that lags gets the latest per member. */
export interface MemberUpdatedFrame {
  op: 'member_updated';
  room: string;
  user: string;
  state: PresenceState;
  ts: number;
}

/**
 * Instead of member frames in a room above the node's `presence-list-max`:
 * the count, and how many joined and left since this node's previous
 * `member_count` for the room, at most one per interval. `listed: true`: the
 * room is back at or below the threshold and member frames resume (ask
 * `presence` for the list).
 */
export interface MemberCountFrame {
  op: 'member_count';
  room: string;
  count: number;
  joined: number;
  left: number;
  listed: boolean;
  ts: number;
}

export interface PresenceAnswerFrame {
  op: 'presence';
  rid: RequestId;
  room: string;
  /** As in `joined`: all members, or the first ones in a large room. */
  members: Member[];
  /** How many members the room has. */
  count: number;
}

/** Answer to `presence_set`: the state the members now see (the token's `presence` claim merged over yours). */
export interface PresenceSetAnswerFrame {
  op: 'presence_set';
  rid: RequestId;
  room: string;
  state: PresenceState;
}
