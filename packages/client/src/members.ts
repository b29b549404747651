/**
 * A room's members as the SDK holds them: folded from `joined` and the
 * member frames (`member_joined`, `member_left`, `member_updated`,
 * `member_count`) before the room emits them, so a listener reads the map
 * already changed. In a large room (docs/protocol.md, "Large rooms") the map
 * holds only the members the server listed; `count` is the whole room.
 */
import type {
  JoinedFrame,
  Member,
  MemberCountFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  MemberUpdatedFrame,
  PresenceState,
} from '../../protocol/src/frames.js';
import { TypedEmitter } from './emitter.js';

type MemberFrame = MemberJoinedFrame | MemberLeftFrame | MemberUpdatedFrame | MemberCountFrame;

/** Events of {@link RoomMembers}. */
export interface RoomMembersEvents {
  /**
   * The members or the count changed: a join or `presence` answer, a member
   * frame, your own `setPresence`, a leave. Emitted before the room's event
   * of the same change, if it has one; a view reads `map` and `count` again
   * (as React's `useSyncExternalStore` does in `@nerve-rt/react`).
   */
  change: RoomMembers;
}

export class RoomMembers extends TypedEmitter<RoomMembersEvents> {
  readonly #members = new Map<string, Member>();
  #count = 0;

  /** Members by user id (every member, unless `complete` is false). */
  get map(): ReadonlyMap<string, Member> {
    return this.#members;
  }

  /** How many members the room has, cluster-wide (also in a large room, where `map` holds fewer). */
  get count(): number {
    return this.#count;
  }

  /** False in a large room: the server sends counts, and `map` holds only the members it listed. */
  get complete(): boolean {
    return this.#members.size >= this.#count;
  }

  /** A member's presence state, if they are listed and have one. */
  state(user: string): PresenceState | undefined {
    return this.#members.get(user)?.state;
  }

  /** @internal A `joined` or `presence` answer: the list starts over. */
  reset(list: Pick<JoinedFrame, 'members' | 'count'>): void {
    this.#members.clear();
    for (const member of list.members) this.#members.set(member.user, member);
    // A server before presence counts sends none: the list is the count.
    this.#count = Math.max(Number(list.count) || 0, list.members.length);
    this.emit('change', this);
  }

  /** @internal A member frame of this room. */
  apply(frame: MemberFrame): void {
    this.#apply(frame);
    this.emit('change', this);
  }

  #apply(frame: MemberFrame): void {
    switch (frame.op) {
      case 'member_joined':
        this.#members.set(frame.user, { user: frame.user, since: frame.ts, ...(frame.state === undefined ? {} : { state: frame.state }) });
        this.#count = frame.count ?? this.#count + 1;
        return;
      case 'member_left':
        this.#members.delete(frame.user);
        this.#count = frame.count ?? Math.max(0, this.#count - 1);
        return;
      case 'member_updated': {
        const member = this.#members.get(frame.user);
        if (member) this.#members.set(frame.user, { ...member, state: frame.state });
        return;
      }
      case 'member_count':
        this.#count = frame.count;
        return;
    }
  }

  /** @internal The room was left: nothing is known any more. */
  clear(): void {
    this.#members.clear();
    this.#count = 0;
    this.emit('change', this);
  }
}
