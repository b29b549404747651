/**
 * The presence seam: who is in which room, across the cluster
 * (implementations: memory.ts, redis.ts; test/conformance/presence.ts runs
 * against both). Presence is kept per connection but reported per user: a
 * user with several connections is one member, who joins with the first
 * connection and leaves with the last. `add`/`remove` are idempotent per
 * connection; `members` lists each user once, ordered by `since`.
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
}

export interface AddResult {
  /** The user had no connection in the room before. */
  userJoined: boolean;
  /** The room had no member before (a new room session begins). */
  roomStarted: boolean;
}

export interface RemoveResult {
  /** That was the user's last connection in the room. */
  userLeft: boolean;
  /** That was the room's last member (the room session ends). */
  roomEmpty: boolean;
}

export interface Presence {
  readonly driver: string;
  start(): Promise<void>;
  add(room: RoomRef, entry: PresenceEntry): Promise<AddResult>;
  remove(room: RoomRef, entry: Pick<PresenceEntry, 'user' | 'conn'>): Promise<RemoveResult>;
  members(room: RoomRef): Promise<Member[]>;
  health(): LaneHealth;
  close(): Promise<void>;
}
