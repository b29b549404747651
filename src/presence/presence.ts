/**
 * The presence seam: who is in which room, across the cluster
 * (implementations: memory.ts, redis.ts; test/conformance/presence.ts runs
 * against both). Presence is kept per connection but reported per user: a
 * user with several connections is one member, who joins with the first
 * connection and leaves with the last. `add`/`remove` are idempotent per
 * connection; `members` lists each user once, ordered by `since`.
 * A member's presence state (JSON text, checked by the gateway) is kept per
 * user: the last one set by any of their connections (`add` with `state`,
 * `setState`), gone when the user leaves.
 */
import type { LaneHealth } from '../lanes.js';
import type { Member } from '../../packages/protocol/src/frames.js';
import type { RoomRef } from '../history/history.js';

export interface PresenceEntry {
  user: string;
  conn: string;
  node: string;
  /** Server time, ms since epoch. */
  ts: number;
  /** The user's presence state from this join, as JSON text of an object; absent: keep the user's state (none for a new member). */
  state?: string;
}

/** One read of a room's members: the first `limit` by `since`, and how many there are. */
export interface MemberList {
  members: Member[];
  count: number;
}

export interface AddResult {
  /** The user had no connection in the room before. */
  userJoined: boolean;
  /** The room had no member before (a new room session begins). */
  roomStarted: boolean;
  /** Members of the room right after the add. */
  count: number;
}

export interface RemoveResult {
  /** That was the user's last connection in the room. */
  userLeft: boolean;
  /** That was the room's last member (the room session ends). */
  roomEmpty: boolean;
  /** Members of the room right after the remove. */
  count: number;
}

export interface Presence {
  readonly driver: string;
  /**
   * Whether every node reads the same presence (Redis): then a count in a member frame from another node is
   * the room's. False when each node keeps its own (memory): such a count says nothing about this node's.
   */
  readonly clusterWide: boolean;
  start(): Promise<void>;
  add(room: RoomRef, entry: PresenceEntry): Promise<AddResult>;
  remove(room: RoomRef, entry: Pick<PresenceEntry, 'user' | 'conn'>): Promise<RemoveResult>;
  members(room: RoomRef): Promise<Member[]>;
  /** Whether `user` has a connection in the room: one read, however large the room. */
  has(room: RoomRef, user: string): Promise<boolean>;
  /** The first `limit` members (all without it) and the count, in one read. */
  list(room: RoomRef, limit?: number): Promise<MemberList>;
  /** Set the user's state (JSON text) if this connection is in the room; false when it is not. */
  setState(room: RoomRef, entry: Pick<PresenceEntry, 'user' | 'conn'>, state: string): Promise<boolean>;
  health(): LaneHealth;
  close(): Promise<void>;
}
