/**
 * The `presence_set` op: a member replaces their presence state in a joined
 * room (bounded in size, rate-limited per connection and room), the store
 * keeps it cluster-wide, and the room gets `member_updated` (conflated on
 * the way out, member-pushes.ts). Also the state a `join` brings.
 */
import type { ChannelNamer } from '../bus/channels.js';
import type { RoomRef } from '../history/history.js';
import type { Presence } from '../presence/presence.js';
import { presenceState, type StateAndText } from '../presence/state.js';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { PRESENCE_LIMITS, type MemberUpdatedFrame, type PresenceSetFrame, type PresenceState } from '../../packages/protocol/src/frames.js';
import type { Connection } from './connection.js';
import { checkRoom } from './failures.js';
import { TokenBucket } from './rate-limit.js';

export interface PresenceStatesDeps {
  presence: Pick<Presence, 'setState'>;
  namer: ChannelNamer;
  maxRoomIdLength: number;
  maxStateBytes: number;
  /** Publish a presence notice on the room channel, best effort; `except`: the connection that must not get it. */
  announce: (channel: string, payload: string, except: string | undefined) => Promise<void>;
}

const EMPTY_STATE: StateAndText = { state: {}, text: '{}' };

export class PresenceStates {
  /** Per connection, a `presence_set` bucket per room (gone with the connection). */
  readonly #buckets = new WeakMap<Connection, Map<string, TokenBucket>>();

  constructor(private readonly deps: PresenceStatesDeps) {}

  /** The state a join (or set) gives `conn`: the client's with the token's `presence` claim over it, and its JSON text; throws `presence_too_large`. */
  stateOf(conn: Connection, client: PresenceState | undefined): StateAndText | undefined {
    return presenceState(client, conn.identity?.presence, this.deps.maxStateBytes);
  }

  async set(conn: Connection, frame: PresenceSetFrame): Promise<void> {
    checkRoom(frame.room, this.deps.maxRoomIdLength);
    if (!conn.rooms.has(frame.room)) throw new NerveError(ErrorCode.NotJoined, 'join the room to set your presence there');
    // The token first: a refused frame does no state work, so a flood of large states is cheap to refuse.
    // A frame too large keeps the token it took: its merge and measure were real work (the cost the bucket
    // bounds), and given back, a flood of large states would never run dry and cost that work every frame.
    // The cheap checks above take none. Too large and over the rate at once: `rate_limited`.
    const retryAfterMs = this.#bucket(conn, frame.room).take();
    if (retryAfterMs > 0) throw new NerveError(ErrorCode.RateLimited, 'too many presence_set in this room', { retryAfterMs });
    const { state, text } = this.stateOf(conn, frame.state) ?? EMPTY_STATE;
    const ref: RoomRef = { tenant: conn.tenant, room: frame.room };
    // The connection may have left meanwhile (its presence entry gone): then it is not joined.
    if (!(await this.deps.presence.setState(ref, { user: conn.user, conn: conn.id }, text))) {
      throw new NerveError(ErrorCode.NotJoined, 'not in that room');
    }
    conn.answer({ op: 'presence_set', rid: frame.rid, room: frame.room, state });
    await this.announce(ref, conn.user, state, conn.id);
  }

  /** member_updated to the room (not to `except`, which has the answer). */
  announce(ref: RoomRef, user: string, state: PresenceState, except: string | undefined): Promise<void> {
    const frame: MemberUpdatedFrame = { op: 'member_updated', room: ref.room, user, state, ts: Date.now() };
    return this.deps.announce(this.deps.namer.room(ref.tenant, ref.room), encodeFrame(frame), except);
  }

  #bucket(conn: Connection, room: string): TokenBucket {
    let rooms = this.#buckets.get(conn);
    if (!rooms) {
      rooms = new Map();
      this.#buckets.set(conn, rooms);
    }
    let bucket = rooms.get(room);
    if (!bucket) {
      // A full bucket is as good as none: dropped, so a connection touring rooms keeps few.
      if (rooms.size >= 8) for (const [name, old] of rooms) if (old.available() >= PRESENCE_LIMITS.setBurst) rooms.delete(name);
      bucket = new TokenBucket(PRESENCE_LIMITS.setPerSecond, PRESENCE_LIMITS.setBurst);
      rooms.set(room, bucket);
    }
    return bucket;
  }
}
