/**
 * In-process Presence, for a single node and for unit tests. Nothing expires
 * here: in one process a crashed node is the whole system. Empty rooms and
 * users without connections are deleted at once, so memory follows the live
 * connection count.
 */
import { escapeComponent } from '../bus/channels.js';
import type { LaneHealth } from '../lanes.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { Member } from '../../packages/protocol/src/frames.js';
import type { RoomRef } from '../history/history.js';
import type { AddResult, Presence, PresenceEntry, RemoveResult } from './presence.js';

interface UserPresence {
  /** Time of the connection that made the user a member; kept while any connection stays. */
  since: number;
  conns: Map<string, PresenceEntry>;
}

export class MemoryPresence implements Presence {
  readonly driver = 'memory';
  /** room key → user → presence. */
  private readonly rooms = new Map<string, Map<string, UserPresence>>();
  private state: 'idle' | 'running' | 'closed' = 'idle';
  private closing: Promise<void> | undefined;

  async start(): Promise<void> {
    if (this.state === 'closed') throw new NerveError(ErrorCode.Unavailable, 'presence is closed');
    this.state = 'running';
  }

  async add(room: RoomRef, entry: PresenceEntry): Promise<AddResult> {
    this.assertRunning();
    const key = roomKey(room);
    let users = this.rooms.get(key);
    const roomStarted = users === undefined;
    if (!users) {
      users = new Map();
      this.rooms.set(key, users);
    }
    const existing = users.get(entry.user);
    if (existing) {
      // A repeated add of a known connection changes nothing: idempotent.
      if (!existing.conns.has(entry.conn)) existing.conns.set(entry.conn, { ...entry });
      return { userJoined: false, roomStarted: false };
    }
    users.set(entry.user, { since: entry.ts, conns: new Map([[entry.conn, { ...entry }]]) });
    return { userJoined: true, roomStarted };
  }

  async remove(room: RoomRef, entry: Pick<PresenceEntry, 'user' | 'conn'>): Promise<RemoveResult> {
    this.assertRunning();
    const key = roomKey(room);
    const users = this.rooms.get(key);
    const presence = users?.get(entry.user);
    if (!users || !presence || !presence.conns.delete(entry.conn)) return { userLeft: false, roomEmpty: false };
    if (presence.conns.size > 0) return { userLeft: false, roomEmpty: false };
    users.delete(entry.user);
    if (users.size > 0) return { userLeft: true, roomEmpty: false };
    this.rooms.delete(key);
    return { userLeft: true, roomEmpty: true };
  }

  async members(room: RoomRef): Promise<Member[]> {
    this.assertRunning();
    const users = this.rooms.get(roomKey(room));
    if (!users) return [];
    return [...users.entries()].map(([user, presence]) => ({ user, since: presence.since })).sort(compareMembers);
  }

  health(): LaneHealth {
    const ok = this.state === 'running';
    return ok ? { lane: 'presence', driver: this.driver, ok } : { lane: 'presence', driver: this.driver, ok, detail: `presence is ${this.state}` };
  }

  /** Number of rooms with at least one member, for tests and the admin page. */
  roomCount(): number {
    return this.rooms.size;
  }

  close(): Promise<void> {
    this.closing ??= Promise.resolve().then(() => {
      this.state = 'closed';
      this.rooms.clear();
    });
    return this.closing;
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new NerveError(ErrorCode.Unavailable, `presence is ${this.state}`);
  }
}

/** Members by `since`, ties by user id (code unit order, as Redis sorts equal scores). */
function compareMembers(a: Member, b: Member): number {
  if (a.since !== b.since) return a.since - b.since;
  return a.user < b.user ? -1 : a.user > b.user ? 1 : 0;
}

function roomKey(room: RoomRef): string {
  return `${escapeComponent(room.tenant)}:${escapeComponent(room.room)}`;
}
