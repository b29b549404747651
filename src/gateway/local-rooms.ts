/**
 * Which local connections listen on which bus channel. A channel is a room
 * channel (members of the room on this node) or a user channel (that user's
 * connections on this node). `add` reports the first local listener and
 * `remove` the last, which is when the gateway acquires and releases the
 * channel on the bus.
 */
import type { RoomChatCursor } from './chat-gap.js';
import type { Connection } from './connection.js';

/**
 * The local connections on one channel, in the order they came. One is held
 * as is, more in a Set: a user channel usually has a single connection on a
 * node, and a Set, even of one, costs about 170 bytes, for each connected user.
 * One difference from a Set: a connection added while a channel of one is
 * being iterated is not visited. Fan-out iterates synchronously and adds
 * nothing meanwhile; other callers iterate copies.
 */
export class Members implements Iterable<Connection> {
  #one: Connection | undefined;
  #many: Set<Connection> | undefined;

  get size(): number {
    return this.#many !== undefined ? this.#many.size : this.#one !== undefined ? 1 : 0;
  }

  has(conn: Connection): boolean {
    return this.#many !== undefined ? this.#many.has(conn) : this.#one === conn;
  }

  add(conn: Connection): void {
    if (this.#many !== undefined) this.#many.add(conn);
    else if (this.#one === undefined) this.#one = conn;
    else if (this.#one !== conn) {
      this.#many = new Set([this.#one, conn]);
      this.#one = undefined;
    }
  }

  delete(conn: Connection): void {
    if (this.#many !== undefined) this.#many.delete(conn);
    else if (this.#one === conn) this.#one = undefined;
  }

  [Symbol.iterator](): Iterator<Connection> {
    if (this.#many !== undefined) return this.#many.values();
    return (this.#one !== undefined ? [this.#one] : []).values();
  }
}

export interface ChannelTarget {
  kind: 'room' | 'user';
  tenant: string;
  id: string;
  connections: Members;
  /** Room channels: the last chat position delivered here, and gap recovery (src/gateway/chat-gap.ts). Dropped with the target. */
  chat?: RoomChatCursor;
}

export class LocalRooms {
  private readonly byChannel = new Map<string, ChannelTarget>();
  private roomCount = 0;

  /** Returns true when `conn` is the channel's first local listener. */
  add(channel: string, kind: 'room' | 'user', tenant: string, id: string, conn: Connection): boolean {
    let target = this.byChannel.get(channel);
    const first = target === undefined;
    if (!target) {
      target = { kind, tenant, id, connections: new Members() };
      this.byChannel.set(channel, target);
      if (kind === 'room') this.roomCount += 1;
    }
    target.connections.add(conn);
    return first;
  }

  /** Returns true when the channel has no local listener left. */
  remove(channel: string, conn: Connection): boolean {
    const target = this.byChannel.get(channel);
    if (!target) return false;
    target.connections.delete(conn);
    if (target.connections.size > 0) return false;
    this.byChannel.delete(channel);
    if (target.kind === 'room') this.roomCount -= 1;
    return true;
  }

  get(channel: string): ChannelTarget | undefined {
    return this.byChannel.get(channel);
  }

  /** Rooms with at least one local member. */
  rooms(): number {
    return this.roomCount;
  }

  /** Each room with a local member, once. */
  *roomTargets(): Generator<{ tenant: string; room: string }> {
    for (const target of this.byChannel.values()) if (target.kind === 'room') yield { tenant: target.tenant, room: target.id };
  }
}
