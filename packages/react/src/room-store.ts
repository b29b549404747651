/**
 * One room of one client as a store: joined while some component holds it
 * (a `Lease`: StrictMode's second effect run does not join twice), its chat
 * as the SDK's `room.messages` hands it (edits, deletes and reactions
 * folded in), its members, and "load older" paging. The SDK does the hard
 * parts (rejoins, resume, gap fills, re-sends, folding); this only puts its
 * answers and events into one snapshot per change.
 */
import type { AckFrame, ChatPublishOptions, JoinOptions, Member, MessageList, NerveClientError, Room, RoomChatMessage, RoomMembers } from '@nerve-rt/client';
import { Lease, Store } from './store.js';

/**
 * Where a room stands: `idle` (nobody holds it, or the client is closed),
 * `joining`, `joined` (rejoined on its own after reconnects), `ended` (the
 * server API ended it; not rejoined), `failed` (the join was refused, or a
 * rejoin was and the SDK dropped the room: see `error`).
 */
export type RoomStatus = 'idle' | 'joining' | 'joined' | 'ended' | 'failed';

/** What `useRoom` shows of a room. */
export interface RoomSnapshot<Chat = unknown> {
  /** Where the room stands. */
  status: RoomStatus;
  /** The last failure: the join's, a rejoin's or gap fill's (the room's `error` event), or `loadOlder`'s. */
  error: NerveClientError | undefined;
  /**
   * Chat, oldest first, as `room.messages` holds it: the join's history, older
   * pages, live messages and replays, each once, with edits, deletes
   * (tombstones) and reactions folded in. A new array after each change.
   */
  messages: readonly RoomChatMessage<Chat>[];
  /** Whether older messages may exist (`loadOlder()` would fetch some). */
  hasOlder: boolean;
  /** A `loadOlder()` is in flight. */
  loadingOlder: boolean;
  /**
   * Members with their presence state, as `room.members` holds them (the
   * join's list, member frames, your own `setPresence`; needs the `presence`
   * right). In a room above the node's list size, only the listed ones.
   */
  members: readonly Member[];
  /** How many members the room has (each user once); above the node's list size, more than `members.length`. */
  count: number;
  /**
   * Chat messages after your read position that others sent (`room.unread`):
   * the server's count at the join (at most 100), then followed live.
   */
  unread: number;
  /** Your read position, a chat offset (`room.read`; 0: none). */
  read: number;
  /**
   * The other members' read positions, user → offset (`room.readPositions`;
   * needs the `presence` right). "Seen by": `offset >= message.offset`. A new
   * map only when a position moved.
   */
  readPositions: ReadonlyMap<string, number>;
}

/** Options of a room's join and paging: the SDK's `JoinOptions` plus the page size of `loadOlder`. */
export interface RoomOptions extends JoinOptions {
  /** Messages per `loadOlder()` page, 1–100. Default 50. */
  pageSize?: number;
}

/** What the store uses of a room: `Room` fits, tests pass a fake. */
export type RoomSource<Chat> = Pick<Room<Chat>, 'name' | 'join' | 'leave' | 'publish' | 'on' | 'markRead' | 'unread' | 'read' | 'readPositions'> & {
  /** The room's folded chat (`room.messages`). */
  readonly messages: Pick<MessageList<Chat>, 'items' | 'on' | 'loadOlder'>;
  /** The room's members (`room.members`): read again at each `change`. */
  readonly members: Pick<RoomMembers, 'map' | 'count'> & { on(name: 'change', listener: () => void): () => void };
};

const IDLE: RoomSnapshot<never> = {
  status: 'idle',
  error: undefined,
  messages: [],
  hasOlder: false,
  loadingOlder: false,
  members: [],
  count: 0,
  unread: 0,
  read: 0,
  readPositions: new Map(),
};

export class RoomStore<Chat = unknown> extends Store<RoomSnapshot<Chat>> {
  readonly room: RoomSource<Chat>;
  /** Whether the client still has the room (a failed rejoin drops it). */
  readonly #tracked: () => boolean;
  readonly #lease = new Lease(
    () => this.#start(),
    () => this.#stop(),
  );
  #options: RoomOptions = {};
  #offs: Array<() => void> = [];
  /** Bumped by every start and stop: answers of an older join or page are dropped. */
  #generation = 0;

  constructor(room: RoomSource<Chat>, tracked: () => boolean) {
    super(IDLE);
    this.room = room;
    this.#tracked = tracked;
  }

  /** Hold the room (join it if nobody did); the options count when this acquire joins. Returns the release. */
  acquire(options: RoomOptions = {}): () => void {
    if (!this.#lease.active) this.#options = options;
    return this.#lease.acquire();
  }

  /** Publish chat; resolves with the ack once stored (the message itself arrives like everyone's). */
  readonly publish = (data: Chat, options?: ChatPublishOptions): Promise<AckFrame> => this.room.publish(data, options);

  /**
   * Move your read position forward to `offset` (default: the newest message
   * loaded) and resolve with the stored one; `unread` and `read` follow.
   * Rejects as `room.markRead` does (`not_joined`, `rate_limited`, ...).
   */
  readonly markRead = (offset?: number): Promise<number> =>
    this.room.markRead(offset).then((stored) => {
      // The SDK moved the position before this runs; no event says so.
      this.#patch(this.#reads());
      return stored;
    });

  /**
   * Fetch the page of messages before the oldest one held and put it in
   * front. Never rejects: a failure is the snapshot's `error`. Does nothing
   * unless joined, while a page is in flight, or when `hasOlder` is false.
   */
  readonly loadOlder = async (): Promise<void> => {
    const before = this.getSnapshot();
    if (before.status !== 'joined' || before.loadingOlder || !before.hasOlder) return;
    const generation = this.#generation;
    this.#patch({ loadingOlder: true });
    try {
      // The list folds the page in (its `change` updates `messages`) and says whether older chat is left.
      const more = await this.room.messages.loadOlder(this.#options.pageSize ?? 50);
      if (generation === this.#generation) this.#patch({ hasOlder: more, loadingOlder: false });
    } catch (error) {
      if (generation !== this.#generation) return;
      // epoch_mismatch and the like: this epoch has nothing more to give; a rejoin starts a fresh list.
      this.#patch({ loadingOlder: false, hasOlder: false, error: error as NerveClientError });
    }
  };

  #start(): void {
    const generation = ++this.#generation;
    const room = this.room;
    // Made before the join, so the join's answer fills it (room.messages is kept for the client's life).
    const list = room.messages;
    this.#offs = [
      list.on('change', (messages) => this.#patch({ messages })),
      room.members.on('change', () => this.#patch(membersOf(room))),
      // The room counts unread in its own first `message` listener (a message moves no one's position), and
      // resets the reads before `rejoined`.
      room.on('message', () => this.#patch({ unread: room.unread, read: room.read })),
      room.on('read', () => this.#patch(this.#reads())),
      room.on('rejoined', () => this.#patch(this.#reads())),
      room.on('recovery_failed', ({ joined }) => this.#patch({ hasOlder: mayHaveOlder(joined.history), ...this.#reads() })),
      room.on('room_ended', () => this.#patch({ status: 'ended' })),
      room.on('error', (error) => this.#patch(this.#tracked() ? { error } : { error, status: 'failed' })),
    ];
    this.#patch({ ...IDLE, status: 'joining' });
    const { pageSize: _pageSize, ...join } = this.#options;
    room.join(join).then(
      () => {
        if (generation !== this.#generation) return;
        const messages = list.items;
        this.#patch({ status: 'joined', messages, hasOlder: mayHaveOlder(messages), ...membersOf(room), ...this.#reads() });
      },
      (error: unknown) => {
        if (generation === this.#generation) this.#patch({ status: 'failed', error: error as NerveClientError });
      },
    );
  }

  #stop(): void {
    this.#generation += 1;
    for (const off of this.#offs.splice(0)) off();
    this.set(IDLE);
    // A closed client rejects (it has left every room already); nothing to tell.
    this.room.leave().catch(() => {});
  }

  /** The room's read state as snapshot fields; `readPositions` is the held map unless a position moved (the SDK's changes in place). */
  #reads(): Pick<RoomSnapshot, 'unread' | 'read' | 'readPositions'> {
    const held = this.getSnapshot().readPositions;
    const live = this.room.readPositions;
    const same = held.size === live.size && [...live].every(([user, offset]) => held.get(user) === offset);
    return { unread: this.room.unread, read: this.room.read, readPositions: same ? held : new Map(live) };
  }

  #patch(change: Partial<RoomSnapshot<Chat>>): void {
    const now = this.getSnapshot();
    const changed = (Object.keys(change) as Array<keyof RoomSnapshot<Chat>>).some((key) => change[key] !== now[key]);
    if (changed) this.set({ ...now, ...change });
  }
}

/** The members and count of `room.members`, as a snapshot's fields (a new array: the SDK's map changes in place). */
function membersOf(room: RoomSource<unknown>): Pick<RoomSnapshot, 'members' | 'count'> {
  return { members: [...room.members.map.values()], count: room.members.count };
}

/** Whether a room log may hold messages before the first of `list` (offsets start at 1). */
function mayHaveOlder(list: readonly RoomChatMessage<unknown>[]): boolean {
  const first = list[0];
  return first !== undefined && first.offset > 1;
}
