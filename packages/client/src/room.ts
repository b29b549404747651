/**
 * `Room`: one room of a NerveClient as an object, `client.room<Chat>('x')`.
 * Its methods are the client's, bound to the room; its events are the
 * client's events about this room. The payload types are the app's word
 * (compile time only): nothing is checked or copied at run time.
 */
import type { AckFrame, JoinedFrame, Member, PresenceState, StreamPosition } from '../../protocol/src/frames.js';
import type { DeleteFrame, EditFrame, MessageTargetRef, ReactFrame } from '../../protocol/src/actions.js';
import { TypedEmitter } from './emitter.js';
import { randomId } from './ids.js';
import { MessageList } from './message-list.js';
import { RoomMembers } from './members.js';
import { RoomReads } from './read-state.js';
import type {
  ChatPublishOptions,
  EphemeralPublishOptions,
  HistoryOptions,
  HistoryPage,
  JoinOptions,
  NerveClientEvents,
  RoomEvents,
  RoomJoined,
} from './types.js';

/** What a room needs of its client (NerveClient); an interface, so the two modules do not import each other. */
export interface RoomHost {
  join(room: string, options?: JoinOptions): Promise<JoinedFrame>;
  leave(room: string): Promise<void>;
  publish(room: string, data: unknown, options?: ChatPublishOptions): Promise<AckFrame>;
  publish(room: string, data: unknown, options: EphemeralPublishOptions): Promise<void>;
  history(room: string, options?: HistoryOptions): Promise<HistoryPage>;
  presence(room: string): Promise<Member[]>;
  setPresence(room: string, state: PresenceState): Promise<PresenceState>;
  position(room: string): StreamPosition | undefined;
  act(frame: MessageActionRequest): Promise<AckFrame>;
  markRead(room: string, offset?: number): Promise<number>;
  readonly user: string | undefined;
}

/** An `edit`, `delete` or `react` frame without its `rid` (the requests add it). */
export type MessageActionRequest = Omit<EditFrame, 'rid'> | Omit<DeleteFrame, 'rid'> | Omit<ReactFrame, 'rid'>;

/** Emits one of the client's events on a room; the client calls it for the events about that room. */
export type RoomEmit = <K extends keyof RoomEvents>(name: K, value: RoomEvents[K]) => void;

let emitterOf!: (room: Room) => RoomEmit;
let readsOfRoom!: (room: Room) => RoomReads;

/**
 * One room of a {@link NerveClient}, typed by its payloads: `Chat` is the
 * `data` of its chat messages, `Ephemeral` that of its ephemeral ones
 * (default: the same). Get it with `client.room<Chat>(name)`: the client
 * keeps one per name, so listeners added anywhere meet.
 *
 * ```ts
 * interface ChatPayload { text: string }
 * const room = client.room<ChatPayload>('lobby');
 * room.on('message', (m) => m.class === 'chat' && console.log(m.data.text));
 * await room.join();
 * await room.publish({ text: 'hi' });
 * ```
 */
export class Room<Chat = unknown, Ephemeral = Chat> extends TypedEmitter<RoomEvents<Chat, Ephemeral>> {
  /** The room id. */
  readonly name: string;
  /**
   * The members with their presence state, kept up to date from `joined` and
   * the member events (updated before each event is emitted):
   * `room.members.map.get('bob')?.state`, `room.members.count`. In a large
   * room `complete` is false and only `count` follows the room.
   */
  readonly members = new RoomMembers();
  readonly #host: RoomHost;
  #list: MessageList<Chat> | undefined;
  readonly #reads = new RoomReads();

  static {
    emitterOf = (room) => (name, value) => room.emit(name, value);
    readsOfRoom = (room) => room.#reads;
  }

  /** @internal Rooms are made by `client.room(name)`. */
  constructor(host: RoomHost, name: string) {
    super();
    this.#host = host;
    this.name = name;
    // First listener: the count is up to date when the app's listeners run.
    this.on('message', (message) => this.#reads.onMessage(message, host.user));
  }

  /**
   * Chat messages after your read position that others sent (edit, delete
   * and reaction entries not counted): the server's count at each join (at
   * most 100, meaning 100 or more), then kept up to date from live chat and
   * `markRead`, yours on other devices included.
   */
  get unread(): number {
    return this.#reads.unread;
  }

  /** Your read position: a chat offset of the room log's current epoch (0: none). */
  get read(): number {
    return this.#reads.read;
  }

  /**
   * The other members' read positions, user → offset: from the join (in a
   * room with at most 100 positions stored) and the `read` events since.
   * Needs the `presence` right. For "seen by": `offset >= message.offset`.
   */
  get readPositions(): ReadonlyMap<string, number> {
    return this.#reads.positions;
  }

  /**
   * Move your read position forward to `offset` (default: the newest
   * message loaded, `room.position.offset`). Resolves with the stored
   * position, which never moves back (a lower offset changes nothing). The
   * server keeps it cluster-wide, so it survives a reconnect anywhere; the
   * room's members get a `read` event. Rejects with `not_joined`,
   * `epoch_mismatch` (the log was reset: join again), `rate_limited` (5 per
   * second, 20 in a burst) or `unavailable`.
   */
  markRead(offset?: number): Promise<number> {
    return this.#host.markRead(this.name, offset);
  }

  /** The last position seen in this room (what a reconnect resumes from), once joined. */
  get position(): StreamPosition | undefined {
    return this.#host.position(this.name);
  }

  /** `client.join(name, options)`: join (with a join token if given); resolves with the typed `joined` answer. */
  join(options?: JoinOptions): Promise<RoomJoined<Chat>> {
    return this.#host.join(this.name, options).then((joined) => {
      this.#list?.reset(joined.history);
      return joined as RoomJoined<Chat>;
    });
  }

  /**
   * This room's chat as the app shows it, edits, deletes and reactions
   * folded in ({@link MessageList}). Made on first use and kept up to date
   * from then on (joins, live chat, resyncs): get it before `join()` to have
   * the join's history in it, and `loadOlder()` to page back.
   */
  get messages(): MessageList<Chat> {
    if (!this.#list) {
      const list = new MessageList<Chat>({ history: (options) => this.#host.history(this.name, options) });
      this.on('message', (message) => list.add([message]));
      this.on('recovery_failed', (failed) => list.reset(failed.joined.history));
      this.#list = list;
    }
    return this.#list;
  }

  /**
   * Replace the `data` of a chat message (yours, or anyone's with the
   * `moderate` right); `target` is the message, or `{ id, offset }`.
   * Resolves with the ack of the edit entry; rejects with
   * `message_not_found`, `forbidden` or `epoch_mismatch` (docs/sdk.md).
   */
  edit(target: MessageTargetRef, data: Chat, options: { cmid?: string } = {}): Promise<AckFrame> {
    return this.#host.act({ op: 'edit', room: this.name, target: targetOf(target), data, cmid: options.cmid ?? randomId() });
  }

  /** Delete a chat message (yours, or anyone's with `moderate`): it becomes a tombstone. Rejects as `edit` does. */
  delete(target: MessageTargetRef, options: { cmid?: string } = {}): Promise<AckFrame> {
    return this.#host.act({ op: 'delete', room: this.name, target: targetOf(target), cmid: options.cmid ?? randomId() });
  }

  /** Add your reaction `emoji` (1–32 characters) to a chat message, or take it back with `on: false`. */
  react(target: MessageTargetRef, emoji: string, on = true, options: { cmid?: string } = {}): Promise<AckFrame> {
    return this.#host.act({ op: 'react', room: this.name, target: targetOf(target), emoji, on, cmid: options.cmid ?? randomId() });
  }

  /** `client.leave(name)`: leave; the room is no longer rejoined. Listeners stay (join again to use them). */
  leave(): Promise<void> {
    return this.#host.leave(this.name);
  }

  /** Publish chat (the default): resolves with the ack once stored. See `client.publish`. */
  publish(data: Chat, options?: ChatPublishOptions): Promise<AckFrame>;
  /** Publish an ephemeral message: resolves at once. See `client.publish`. */
  publish(data: Ephemeral, options: EphemeralPublishOptions): Promise<void>;
  publish(data: Chat | Ephemeral, options?: ChatPublishOptions | EphemeralPublishOptions): Promise<AckFrame | void> {
    if (options?.class === 'ephemeral') return this.#host.publish(this.name, data, options);
    return this.#host.publish(this.name, data, options);
  }

  /**
   * One page of older chat, oldest first, `{ messages, more, epoch }`. Page
   * back with `before` = the offset of the oldest message you hold:
   *
   * ```ts
   * let page = await room.history({ limit: 50 });
   * while (page.more) page = await room.history({ before: page.messages[0]!.offset, epoch: page.epoch, limit: 50 });
   * ```
   */
  history(options?: HistoryOptions): Promise<HistoryPage<Chat>> {
    return this.#host.history(this.name, options) as Promise<HistoryPage<Chat>>;
  }

  /** `client.presence(name)`: the members of this room, cluster-wide. */
  presence(): Promise<Member[]> {
    return this.#host.presence(this.name);
  }

  /**
   * `client.setPresence(name, state)`: replace your presence state here (a
   * JSON object: name, status, "in a call"...). The other members get
   * `member_updated`; it is sent again on every rejoin, so it survives a
   * resume on another node. Resolves with the state they see (your token's
   * `presence` claim merged over it).
   */
  setPresence(state: PresenceState): Promise<PresenceState> {
    return this.#host.setPresence(this.name, state);
  }
}

/** Only what names a target: a whole message passed as `target` must not go on the wire. */
function targetOf(target: MessageTargetRef): MessageTargetRef {
  return target.epoch === undefined ? { id: target.id, offset: target.offset } : { id: target.id, offset: target.offset, epoch: target.epoch };
}

/** The function that emits on `room` (its `emit` is protected: only the client that made it calls it). */
export function roomEmitter(room: Room): RoomEmit {
  return emitterOf(room);
}

/** The read state of `room`, which only its client updates. */
export function roomReads(room: Room): RoomReads {
  return readsOfRoom(room);
}

/**
 * The room a client event concerns, if any: the name of the `Room` it is
 * also emitted on.
 */
export function roomOf<K extends keyof NerveClientEvents>(name: K, value: NerveClientEvents[K]): string | undefined {
  switch (name) {
    case 'message':
    case 'member_joined':
    case 'member_left':
    case 'member_updated':
    case 'member_count':
    case 'read':
    case 'rejoined':
    case 'recovery_failed':
    case 'room_ended':
    case 'error':
      return (value as { room?: string }).room;
    default:
      return undefined;
  }
}
