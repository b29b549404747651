/**
 * This instance's own record of the presence entries it wrote to Redis, per
 * room: what the heartbeat refreshes, what a restore after a cut-off writes
 * back, and the adds, removes and restores still in flight that the next
 * step must wait for or leave alone (docs/architecture.md, "Presence across
 * nodes"). Its own module so the shapes and their rules read apart from the
 * scripts that act on them (redis.ts).
 */
import type { RoomRef } from '../history/history.js';

export interface LocalEntry {
  user: string;
  since: number;
  /** The last state this connection set (JSON text, '' = none): a restore after a cut-off brings it back. */
  state: string;
  /** The add still in flight: until it replied the heartbeat leaves the entry alone, and a remove of it waits for it. */
  adding: Promise<unknown> | undefined;
}

export interface LocalRoom {
  room: RoomRef;
  /** member (JSON [user, conn]) → entry. A remove deletes its entry before it sends its script. */
  entries: Map<string, LocalEntry>;
  /** Adds and removes in flight: the room stays (and stays indexed) while one may still create an entry or unlist the room. */
  pending: number;
  /** The restore in flight in this room: a remove starting meanwhile waits for it. */
  restoring: Promise<unknown> | undefined;
  /**
   * After a failed add or remove (whose script may have run), the room is
   * kept (heartbeated, indexed) until then, ms, so that an entry nothing
   * refreshes expires and is reported within a TTL. 0: not kept.
   */
  lingerUntil: number;
}
