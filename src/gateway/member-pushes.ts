/**
 * Member frames (member_joined, member_left, member_updated) from the bus
 * to this node's members of a room. In a room of up to `presenceListMax`
 * members each goes out as is (member_updated conflated per member: a
 * reader that lags gets the latest state). Above it, a join storm would cost
 * O(n²) frames (every join told to every member), so member frames are
 * counted instead, and at most one `member_count` per interval goes to each
 * member: O(n) per interval. docs/protocol.md, "Large rooms".
 */
import type { RoomRef } from '../history/history.js';
import type { Logger } from '../logger.js';
import type { Presence } from '../presence/presence.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import type { MemberCountFrame, MessageClass } from '../../packages/protocol/src/frames.js';
import type { ChannelTarget, LocalRooms } from './local-rooms.js';

export interface MemberPushesDeps {
  local: LocalRooms;
  /** `clusterWide` false: presence is per node, so another node's count says nothing about this node's members. */
  presence: Pick<Presence, 'list'> & Partial<Pick<Presence, 'clusterWide'>>;
  log: Logger;
  /** Rooms above this many members get counts (0 = never). */
  listMax: number;
  intervalMs: number;
  /** Delivery's fan-out; `conflate`: the key under which a lagging reader keeps only the latest frame. */
  fanOut: (target: ChannelTarget, payload: string, messageClass: MessageClass, except?: string, conflate?: string) => void;
}

interface RoomCounts {
  /** The last count learned (member frames, this node's joins, the store at each tick). */
  count: number;
  /** Joins and leaves since the last member_count. */
  joined: number;
  left: number;
  /** Members of this node were last told the room is large (they get counts, not member frames). */
  large: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** The fields of a member frame this module reads. */
interface MemberNotice {
  op?: unknown;
  user?: unknown;
  count?: unknown;
}

/** A member frame's op, user and count; one parse per frame and node (0.7 µs for a join, 2.9 µs for a 530-byte state). */
function readNotice(payload: string): { op: unknown; user: string | undefined; count: number | undefined } {
  let notice: MemberNotice;
  try {
    notice = JSON.parse(payload) as MemberNotice;
  } catch {
    notice = {};
  }
  return {
    op: notice.op,
    user: typeof notice.user === 'string' ? notice.user : undefined,
    count: typeof notice.count === 'number' ? notice.count : undefined,
  };
}

export class MemberPushes {
  readonly #rooms = new Map<string, RoomCounts>();

  constructor(private readonly deps: MemberPushesDeps) {}

  /** Whether a room of `count` members is large here. */
  private isLarge(count: number): boolean {
    return this.deps.listMax > 0 && count > this.deps.listMax;
  }

  /** Whether this node counts the room as large now (from the last count it learned). */
  isLargeRoom(channel: string): boolean {
    const room = this.#rooms.get(channel);
    return room !== undefined && (room.large || this.isLarge(room.count));
  }

  /** This node learned a room's count (its own join or leave): in a large room its members are not told one by one. */
  noteCount(channel: string, count: number): void {
    const room = this.#room(channel);
    room.count = count;
  }

  /** A member frame from the bus for `target`, a room this node has members in; `fromHere`: this node published it. */
  push(channel: string, target: ChannelTarget, payload: string, messageClass: MessageClass, except: string | undefined, fromHere = true): void {
    const { op, user, count } = readNotice(payload);
    const room = this.#room(channel);
    // With per-node presence (`--bus rabbitmq` without Redis) a frame from another node carries that node's
    // count: taken here, it made a room large on a node that holds few of its members, and its members got
    // `member_count`s with `listed: true` instead of the member frames that promise says follow.
    if (count !== undefined && (fromHere || this.deps.presence.clusterWide !== false)) room.count = count;
    const large = this.isLarge(room.count);
    if (op === 'read') {
      // Read pushes (read-receipts.ts) like states: conflated per user for a lagging reader, and not
      // sent in a large room, where every member hearing every read would cost O(readers × members).
      if (!large && !room.large && user !== undefined) this.deps.fanOut(target, payload, messageClass, except, `\u0001read\u0000${target.id}\u0000${user}`);
      return;
    }
    if (op === 'member_updated') {
      // A large room's members see states in `presence` answers only.
      if (!large && !room.large && user !== undefined) this.deps.fanOut(target, payload, messageClass, except, `\u0001state\u0000${target.id}\u0000${user}`);
      return;
    }
    if (op !== 'member_joined' && op !== 'member_left') {
      this.deps.fanOut(target, payload, messageClass, except);
      return;
    }
    if (large || room.large) {
      // Also on the way back: whether the room is small again is the store's word at the tick
      // (bus frames from several nodes may arrive out of order); `listed: true` then tells members.
      if (op === 'member_joined') room.joined += 1;
      else room.left += 1;
      room.large = true;
      this.#schedule(channel, target, room);
      return;
    }
    this.deps.fanOut(target, payload, messageClass, except);
  }

  /** This node has no member left in the room (so a drain leaves no timer behind). */
  forget(channel: string): void {
    const room = this.#rooms.get(channel);
    if (room?.timer) clearTimeout(room.timer);
    this.#rooms.delete(channel);
  }

  #room(channel: string): RoomCounts {
    let room = this.#rooms.get(channel);
    if (!room) {
      room = { count: 0, joined: 0, left: 0, large: false, timer: undefined };
      this.#rooms.set(channel, room);
    }
    return room;
  }

  #schedule(channel: string, target: ChannelTarget, room: RoomCounts): void {
    if (room.timer) return;
    room.timer = setTimeout(() => {
      room.timer = undefined;
      void this.#refresh(channel, target, room);
    }, this.deps.intervalMs);
    room.timer.unref();
  }

  /** Read the exact count (one store read per room and interval on this node), then send it. */
  async #refresh(channel: string, target: ChannelTarget, room: RoomCounts): Promise<void> {
    const ref: RoomRef = { tenant: target.tenant, room: target.id };
    try {
      room.count = (await this.deps.presence.list(ref, 0)).count;
    } catch (error) {
      // The count from the member frames is a fine second best.
      this.deps.log.debug({ err: String(error), room: target.id }, 'member count read failed');
    }
    if (this.#rooms.get(channel) !== room || this.deps.local.get(channel) !== target) return;
    this.#tick(target, room);
  }

  #tick(target: ChannelTarget, room: RoomCounts): void {
    const large = this.isLarge(room.count);
    const frame: MemberCountFrame = {
      op: 'member_count',
      room: target.id,
      count: room.count,
      joined: room.joined,
      left: room.left,
      listed: !large,
      ts: Date.now(),
    };
    room.joined = 0;
    room.left = 0;
    room.large = large;
    this.deps.fanOut(target, encodeFrame(frame), 'presence', undefined, `\u0001count\u0000${target.id}`);
  }
}
