/**
 * Room frames: joining (with resume from a position), leaving, and what the
 * server tells a member about the room itself: ended by the API, or chat
 * missed that a rejoin must fetch (docs/protocol.md, `join`, `resync`, "Resume and idempotency").
 */
import type { ChatMessage } from './chat-frames.js';
import type { RequestId, StreamPosition } from './frame-basics.js';
import type { Member, PresenceState } from './presence-frames.js';

export interface JoinFrame {
  op: 'join';
  rid: RequestId;
  room: string;
  /** Resume from this position: the answer then carries the missed messages. */
  since?: StreamPosition;
  /** How many recent chat messages to return when not resuming (default: the node's `historyOnJoin`). */
  history?: number;
  /**
   * A join token for this room, minted by the application's backend (or
   * `POST /api/tokens/join`): a JWT whose `room` claim names the room. It
   * grants rights in this room the connection token may lack.
   */
  token?: string;
  /** Your presence state in this room (a JSON object, docs/protocol.md "Presence state"); the SDK sends it again on every rejoin. */
  state?: PresenceState;
}

export interface LeaveFrame {
  op: 'leave';
  rid: RequestId;
  room: string;
}

export interface JoinedFrame {
  op: 'joined';
  rid: RequestId;
  room: string;
  /** The members by `since`: all of them, or the first `count` up to the node's `presence-list-max` in a large room. */
  members: Member[];
  /** How many members the room has (each user once). More than `members.length`: a large room, where members get `member_count` frames. */
  count: number;
  /** Recent messages, or the missed ones when resuming, oldest first. */
  history: ChatMessage[];
  /** The room log's position after `history`. */
  position: StreamPosition;
  /** Present when `since` was given: whether exactly the missed messages were returned. */
  recovered?: boolean;
  /** Your read position in the room log's current epoch (0: none). Sent by every server with read positions. */
  read?: number;
  /** Chat messages after `read`, not yours, not edit/delete/react entries; at most `READ_LIMITS.unreadMax` (docs/protocol.md, "Read positions"). */
  unread?: number;
  /** The other users' read positions in this epoch (user → offset), while the room has at most `READ_LIMITS.listMax` of them. */
  reads?: Record<string, number>;
}

export interface LeftFrame {
  op: 'left';
  rid: RequestId;
  room: string;
}

/** A room was ended by the server API: this connection is no longer in it. */
export interface RoomEndedFrame {
  op: 'room_ended';
  room: string;
  /** Free text from the API caller, at most 200 characters. */
  reason: string;
  ts: number;
}

/**
 * Why a node tells a room's members to resync (`resync.reason`):
 * - `unrecoverable`: this node missed chat on the cross-node bus and the
 *   history could not return exactly the missed messages (log reset, trimmed,
 *   more than `recoveryLimit`);
 * - `history_unavailable`: it missed chat and could not read the history;
 * - `position_unknown`: it may have missed chat before it knew the room's position.
 */
export type ResyncReason = 'unrecoverable' | 'history_unavailable' | 'position_unknown';

/**
 * Chat of a room may have been missed and the node could not fill the gap
 * itself: join the room again with `since` (your last position) to fetch it,
 * or resync from the answer when it says `recovered: false`.
 */
export interface ResyncFrame {
  op: 'resync';
  room: string;
  reason: ResyncReason;
}
