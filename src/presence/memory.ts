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
import type { AddResult, MemberList, Presence, PresenceEntry, RemoveResult } from './presence.js';
import { memberOf } from './state.js';

interface UserPresence {
  /** Time of the connection that made the user a member; kept while any connection stays. */
  since: number;
  conns: Map<string, PresenceEntry>;
  /** The last state set by any of the user's connections (JSON text). */
  state: string | undefined;
}

export class MemoryPresence implements Presence {
  readonly driver = 'memory';
  readonly clusterWide = false;
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
      // A repeated add of a known connection changes nothing but the state it brings: idempotent.
      if (!existing.conns.has(entry.conn)) existing.conns.set(entry.conn, { ...entry });
      if (entry.state !== undefined) existing.state = entry.state;
      return { userJoined: false, roomStarted: false, count: users.size };
    }
    users.set(entry.user, { since: entry.ts, conns: new Map([[entry.conn, { ...entry }]]), state: entry.state });
    return { userJoined: true, roomStarted, count: users.size };
  }

  async remove(room: RoomRef, entry: Pick<PresenceEntry, 'user' | 'conn'>): Promise<RemoveResult> {
    this.assertRunning();
    const key = roomKey(room);
    const users = this.rooms.get(key);
    const presence = users?.get(entry.user);
    if (!users || !presence || !presence.conns.delete(entry.conn)) return { userLeft: false, roomEmpty: false, count: users?.size ?? 0 };
    if (presence.conns.size > 0) return { userLeft: false, roomEmpty: false, count: users.size };
    users.delete(entry.user);
    if (users.size > 0) return { userLeft: true, roomEmpty: false, count: users.size };
    this.rooms.delete(key);
    return { userLeft: true, roomEmpty: true, count: 0 };
  }

  async members(room: RoomRef): Promise<Member[]> {
    return (await this.list(room)).members;
  }

  async has(room: RoomRef, user: string): Promise<boolean> {
    this.assertRunning();
    return this.rooms.get(roomKey(room))?.has(user) ?? false;
  }

  async list(room: RoomRef, limit = Infinity): Promise<MemberList> {
    this.assertRunning();
    const users = this.rooms.get(roomKey(room));
    if (!users) return { members: [], count: 0 };
    const ordered = [...users.entries()].sort(([a, pa], [b, pb]) => compareMembers({ user: a, since: pa.since }, { user: b, since: pb.since }));
    return { members: ordered.slice(0, limit).map(([user, presence]) => memberOf(user, presence.since, presence.state)), count: users.size };
  }

  async setState(room: RoomRef, entry: Pick<PresenceEntry, 'user' | 'conn'>, state: string): Promise<boolean> {
    this.assertRunning();
    const presence = this.rooms.get(roomKey(room))?.get(entry.user);
    if (!presence?.conns.has(entry.conn)) return false;
    presence.state = state;
    return true;
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
