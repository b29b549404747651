/**
 * The room and call hooks: each finds its store (one per client and room,
 * one per client for calls), reads it with `useSyncExternalStore`, and
 * holds it from an effect, so the room is joined while a component shows it
 * and left after the last one unmounts.
 */
import { useEffect, useSyncExternalStore } from 'react';
import type { AckFrame, ChatPublishOptions, Member, NerveClient, Room } from '@nerve-rt/client';
import { CallStore, type CallOptions, type CallSnapshot } from './call-store.js';
import { connectionStore, useNerveClient } from './connection.js';
import { RoomStore, type RoomOptions, type RoomSnapshot, type RoomStatus } from './room-store.js';
import { perObject } from './store.js';

const roomStores = perObject((_client: NerveClient) => new Map<string, RoomStore>());
const callStores = perObject((client: NerveClient) => new CallStore(client));

/** The store of room `name` of `client` (made on first use, kept for the client's life like its `Room`). */
function roomStore<Chat>(client: NerveClient, name: string): RoomStore<Chat> {
  const stores = roomStores(client);
  let store = stores.get(name);
  if (!store) {
    store = new RoomStore(client.room(name), () => client.rooms().some((entry) => entry.room === name));
    stores.set(name, store);
  }
  return store as RoomStore<Chat>;
}

/**
 * Hold `store` while the client is open (not `closed`): a join sent to a
 * closed client would be refused, and the provider connects in an effect
 * that runs after its children's. Options count at the join.
 */
function useHeld<O>(store: { acquire(options: O): () => void }, options: O): void {
  const client = useNerveClient();
  const connection = connectionStore(client);
  const readOpen = (): boolean => connection.getSnapshot().state !== 'closed';
  const open = useSyncExternalStore(connection.subscribe, readOpen, readOpen);
  useEffect(() => (open ? store.acquire(options) : undefined), [store, open]);
}

/** What `useRoom` returns: the room's snapshot and what to do with it. */
export interface UseRoom<Chat = unknown, Ephemeral = Chat> extends RoomSnapshot<Chat> {
  /** The SDK's room object, for everything else (ephemeral publishes, its events). */
  room: Room<Chat, Ephemeral>;
  /** Publish chat; resolves with the ack once stored. The message shows in `messages` as it arrives. */
  publish: (data: Chat, options?: ChatPublishOptions) => Promise<AckFrame>;
  /** Fetch the page before the oldest message held (see `hasOlder`); never rejects, a failure is `error`. */
  loadOlder: () => Promise<void>;
  /**
   * Move your read position forward to `offset` (default: the newest message
   * loaded); `unread` and `read` follow, the others get a `read` event.
   * Rejects as `room.markRead` does (`rate_limited` above 5 a second, ...).
   */
  markRead: (offset?: number) => Promise<number>;
}

/**
 * Room `name`: joined while a component using it is mounted (once, however
 * many use it, StrictMode included), left after the last unmounts. Chat in
 * `messages`, oldest first, as the SDK delivers it (resumes and gap fills
 * included); older pages with `loadOlder()`; read receipts in `unread`,
 * `read`, `readPositions` and `markRead()`. A new `name` switches rooms:
 * the old one is left (unless another component still shows it), the new
 * one joined. The options are read at each join, so a change of options
 * alone does not join again.
 * `Chat` and `Ephemeral` type the payloads as in `client.room<Chat>()`.
 */
export function useRoom<Chat = unknown, Ephemeral = Chat>(name: string, options: RoomOptions = {}): UseRoom<Chat, Ephemeral> {
  const client = useNerveClient();
  const store = roomStore<Chat>(client, name);
  useHeld(store, options);
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  return { ...snapshot, room: client.room<Chat, Ephemeral>(name), publish: store.publish, loadOlder: store.loadOlder, markRead: store.markRead };
}

/** What `usePresence` returns. */
export interface UsePresence {
  /** The room's members (each user once), with their presence state when set. */
  members: readonly Member[];
  /** How many members the room has; more than `members.length` in a room above the node's list size. */
  count: number;
  /** Where the room stands (members are known once `joined`). */
  status: RoomStatus;
}

/**
 * The members of room `name`. Joins the room like `useRoom` (sharing its
 * one join); re-renders only when the members or the count change.
 */
export function usePresence(name: string, options: RoomOptions = {}): UsePresence {
  const client = useNerveClient();
  const store = roomStore(client, name);
  useHeld(store, options);
  const readMembers = (): readonly Member[] => store.getSnapshot().members;
  const readCount = (): number => store.getSnapshot().count;
  const readStatus = (): RoomStatus => store.getSnapshot().status;
  const members = useSyncExternalStore(store.subscribe, readMembers, readMembers);
  const count = useSyncExternalStore(store.subscribe, readCount, readCount);
  const status = useSyncExternalStore(store.subscribe, readStatus, readStatus);
  return { members, count, status };
}

/** What `useCall` returns: the call's snapshot and the actions on it. */
export interface UseCall extends CallSnapshot {
  /** Call `peer` 1:1. Does nothing during another call. */
  call: (peer: string) => Promise<void>;
  /** Start a group call in `room` inviting `users` (up to 5). Does nothing during another call. */
  startGroup: (room: string, users: readonly string[]) => Promise<void>;
  /** Answer the ringing call, or join the invited group call. */
  accept: () => Promise<void>;
  /** Refuse the ringing call or the invitation. */
  decline: () => void;
  /** Hang up (cancel, leave) and release the camera and microphone. */
  hangup: () => void;
  /** Switch the microphone off or on; the others are told. */
  setMicrophone: (on: boolean) => Promise<void>;
  /** Switch the camera off or on; the others are told. */
  setCamera: (on: boolean) => Promise<void>;
}

/**
 * This user's call: one at a time, 1:1 or group. While a component using it
 * is mounted, incoming calls ring here (`incoming`, `invite`) and calls
 * during a call are refused `busy`; after the last unmounts, the call is
 * hung up. A call takes the options of the latest render of a `useCall`
 * (so a new `room` counts from the next call on; give every `useCall` of
 * the app the same options).
 */
export function useCall(options: CallOptions = {}): UseCall {
  const client = useNerveClient();
  const store = callStores(client);
  useHeld(store, options);
  // After every render (the held store's first options came with the acquire above).
  useEffect(() => store.configure(options));
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  const { call, startGroup, accept, decline, hangup, setMicrophone, setCamera } = store;
  return { ...snapshot, call, startGroup, accept, decline, hangup, setMicrophone, setCamera };
}
