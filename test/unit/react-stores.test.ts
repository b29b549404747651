/**
 * The stores under @nerve-rt/react's hooks, without React: the lease that
 * makes StrictMode's double effects join once, a room's chat as the SDK's
 * `room.messages` folds it (edits included) with "load older" paging, its
 * members, the connection snapshot's identity, and 1:1 calls between two
 * call stores over the fake signal hub and RTCPeerConnection of the SDK's
 * own call tests. The hooks in
 * a real React app (StrictMode, a real node, Chromium) are
 * test/browser/react.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MessageList,
  NerveClientError,
  RoomMembers,
  TypedEmitter,
  type HistoryOptions,
  type HistoryPage,
  type JoinOptions,
  type NerveClientEvents,
  type RoomChatMessage,
  type RoomEvents,
  type RoomJoined,
} from '../../packages/client/src/index.js';
import { RoomReads } from '../../packages/client/src/read-state.js';
import { CallStore } from '../../packages/react/src/call-store.js';
import { ConnectionStore } from '../../packages/react/src/connection.js';
import { RoomStore } from '../../packages/react/src/room-store.js';
import { Lease } from '../../packages/react/src/store.js';
import { fakeStream, hub, PC } from '../helpers/fake-rtc.js';
import { waitFor } from '../helpers/wait.js';
import { chatMessage, EPOCH } from '../helpers/chat-fixtures.js';

interface Text {
  text: string;
}

function chat(offset: number, epoch = EPOCH): RoomChatMessage<Text> {
  return chatMessage(offset, { text: `m${offset}` }, { epoch });
}

function range(from: number, to: number): RoomChatMessage<Text>[] {
  return Array.from({ length: to - from + 1 }, (_, index) => chat(from + index));
}

/** One macrotask: what the lease waits before its last release stops. */
const nextTask = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * A room whose answers the test hands out: joins answer with the newest
 * `onJoin` of `stored`, pages come from `stored`. Its `messages` and
 * `members` are the SDK's own, fed as `Room` and the client feed them (join
 * answers, messages, member frames, resyncs).
 */
class FakeRoom extends TypedEmitter<RoomEvents<Text>> {
  readonly name = 'r';
  readonly messages = new MessageList<Text>(this);
  readonly members = new RoomMembers();
  joins: JoinOptions[] = [];
  leaves = 0;
  pages: HistoryOptions[] = [];
  /** The SDK's read state, fed as the client feeds it; `joinReads` goes into each join's answer. */
  readonly reads = new RoomReads();
  joinReads: Pick<RoomJoined<Text>, 'read' | 'unread' | 'reads'> = {};
  constructor(
    readonly stored: RoomChatMessage<Text>[],
    readonly onJoin: number,
  ) {
    super();
    // First, as in `Room`: the count is up to date when later listeners run.
    this.on('message', (message) => this.reads.onMessage(message, 'me'));
    this.on('message', (message) => this.messages.add([message]));
    this.on('recovery_failed', ({ joined }) => this.messages.reset(joined.history));
  }
  join(options: JoinOptions = {}): Promise<RoomJoined<Text>> {
    this.joins.push(options);
    const newest = this.stored.slice(-this.onJoin);
    const position = { offset: this.stored.length, epoch: EPOCH };
    const joined: RoomJoined<Text> = {
      op: 'joined',
      rid: 1,
      room: 'r',
      members: [{ user: 'alice', since: 1 }],
      count: 1,
      history: newest,
      position,
      ...this.joinReads,
    };
    this.members.reset(joined);
    this.reads.reset(joined, 'me');
    this.messages.reset(newest);
    return Promise.resolve(joined);
  }
  leave(): Promise<void> {
    this.leaves += 1;
    return Promise.resolve();
  }
  history(options: HistoryOptions = {}): Promise<HistoryPage<Text>> {
    this.pages.push(options);
    const older = this.stored.filter((message) => options.before === undefined || message.offset < options.before);
    const messages = older.slice(-(options.limit ?? 50));
    return Promise.resolve({ messages, more: messages.length < older.length, epoch: EPOCH });
  }
  publish(): Promise<never> {
    return Promise.reject(new Error('not used'));
  }
  get unread(): number {
    return this.reads.unread;
  }
  get read(): number {
    return this.reads.read;
  }
  get readPositions(): ReadonlyMap<string, number> {
    return this.reads.positions;
  }
  /** As the client does: the answer moves the position, then the promise resolves. */
  markRead(offset = this.stored.length): Promise<number> {
    this.reads.moveTo(offset, EPOCH);
    return Promise.resolve(this.reads.read);
  }
  fire<K extends keyof RoomEvents<Text>>(name: K, value: RoomEvents<Text>[K]): void {
    const frame = value as { op?: string };
    if (frame.op === 'member_joined' || frame.op === 'member_left' || frame.op === 'member_updated' || frame.op === 'member_count') {
      this.members.apply(value as Parameters<RoomMembers['apply']>[0]);
    }
    if (frame.op === 'read') this.reads.onPush(value as RoomEvents<Text>['read'], 'me');
    this.emit(name, value);
  }
}

test('a lease released and taken again in one pass (StrictMode) starts once and never stops', async () => {
  const calls: string[] = [];
  const lease = new Lease(
    () => calls.push('start'),
    () => calls.push('stop'),
  );
  const release = lease.acquire();
  release();
  const again = lease.acquire();
  await nextTask();
  assert.deepEqual(calls, ['start']);
  again();
  again(); // a second call of one release does nothing
  assert.deepEqual(calls, ['start'], 'the stop waits a task');
  await nextTask();
  assert.deepEqual(calls, ['start', 'stop']);
  assert.equal(lease.active, false);
});

test('a room store joins once across a StrictMode remount, pages back, follows members, and leaves after the last release', async () => {
  const room = new FakeRoom(range(1, 25), 10);
  const store = new RoomStore<Text>(room, () => true);
  const release = store.acquire({ history: 10, pageSize: 10 });
  release();
  const held = store.acquire({ history: 99 });
  await waitFor(() => store.getSnapshot().status === 'joined', { what: 'joined' });
  assert.equal(room.joins.length, 1, 'one join');
  assert.deepEqual(room.joins[0], { history: 10 }, 'the first acquire joins with its options, without pageSize');
  let snapshot = store.getSnapshot();
  assert.deepEqual(
    snapshot.messages.map((message) => message.offset),
    range(16, 25).map((message) => message.offset),
  );
  assert.equal(snapshot.hasOlder, true);
  assert.deepEqual(
    snapshot.members.map((member) => member.user),
    ['alice'],
  );

  // Live chat, a replay of one held already, an edit (folded by the SDK's list), members coming and going.
  room.fire('message', chat(26));
  room.fire('message', chat(26));
  room.fire('message', { ...chat(27), data: { text: 'fixed' }, action: 'edit', target: { id: 'm26', offset: 26 } });
  room.fire('member_joined', { op: 'member_joined', room: 'r', user: 'bob', ts: 2, count: 2 });
  room.fire('member_left', { op: 'member_left', room: 'r', user: 'alice', ts: 3, count: 1 });
  room.fire('member_updated', { op: 'member_updated', room: 'r', user: 'bob', state: { status: 'away' }, ts: 4 });
  snapshot = store.getSnapshot();
  assert.equal(snapshot.messages.length, 11, 'the edit is no message of its own');
  assert.deepEqual(snapshot.messages[10]?.data, { text: 'fixed' });
  assert.equal(snapshot.messages[10]?.editedAt, 27);
  assert.deepEqual(snapshot.members, [{ user: 'bob', since: 2, state: { status: 'away' } }]);
  assert.equal(snapshot.count, 1);

  // Load older twice: back to offset 1, then nothing more.
  await store.loadOlder();
  assert.deepEqual(room.pages[0], { limit: 10, before: 16, epoch: EPOCH });
  assert.equal(store.getSnapshot().messages[0]?.offset, 6);
  assert.equal(store.getSnapshot().hasOlder, true);
  await store.loadOlder();
  snapshot = store.getSnapshot();
  assert.equal(snapshot.messages[0]?.offset, 1);
  assert.equal(snapshot.messages.length, 26);
  assert.equal(snapshot.hasOlder, false);
  await store.loadOlder();
  assert.equal(room.pages.length, 2, 'no request once nothing older is left');

  // A resync the SDK could not fill: the list starts over from the answer.
  const fresh = chat(1, 'e2');
  room.fire('recovery_failed', {
    room: 'r',
    joined: { op: 'joined', rid: 2, room: 'r', members: [], count: 0, history: [fresh], position: { offset: 1, epoch: 'e2' } },
  });
  assert.deepEqual(store.getSnapshot().messages, [fresh]);

  held();
  assert.equal(room.leaves, 0);
  await nextTask();
  assert.equal(room.leaves, 1);
  assert.equal(store.getSnapshot().status, 'idle');
  assert.equal(room.messages.listenerCount('change'), 0, 'listeners removed');
  assert.equal(room.members.listenerCount('change'), 0);
});

test('a room store follows read receipts: unread from the join, live chat, markRead, and the others positions', async () => {
  const room = new FakeRoom(range(1, 10), 10);
  room.joinReads = { read: 6, unread: 4, reads: { bob: 8 } };
  const store = new RoomStore<Text>(room, () => true);
  const release = store.acquire();
  assert.equal(store.getSnapshot().unread, 0, 'nothing known before the join');
  await waitFor(() => store.getSnapshot().status === 'joined', { what: 'joined' });
  let snapshot = store.getSnapshot();
  assert.equal(snapshot.unread, 4);
  assert.equal(snapshot.read, 6);
  assert.deepEqual([...snapshot.readPositions], [['bob', 8]]);

  // Someone else's chat counts; ours and an edit entry do not; the positions map stays the same object.
  const positions = snapshot.readPositions;
  room.fire('message', chat(11));
  room.fire('message', { ...chat(12), from: 'me' });
  room.fire('message', { ...chat(13), data: { text: 'fixed' }, action: 'edit', target: { id: 'm11', offset: 11 } });
  snapshot = store.getSnapshot();
  assert.equal(snapshot.unread, 5);
  assert.equal(snapshot.readPositions, positions);

  // Bob reads on: a new map with his position; a push about us (another device) moves ours.
  room.fire('read', { op: 'read', room: 'r', user: 'bob', offset: 11, epoch: EPOCH, ts: 5 });
  snapshot = store.getSnapshot();
  assert.notEqual(snapshot.readPositions, positions);
  assert.equal(snapshot.readPositions.get('bob'), 11);
  room.fire('read', { op: 'read', room: 'r', user: 'me', offset: 8, epoch: EPOCH, ts: 6 });
  assert.equal(store.getSnapshot().read, 8);
  assert.equal(store.getSnapshot().unread, 3);

  // markRead resolves with the stored position, and the snapshot follows without any event.
  assert.equal(await store.markRead(), 10);
  assert.equal(store.getSnapshot().unread, 1, 'message 11 came after what the join loaded');
  assert.equal(await store.markRead(11), 11);
  snapshot = store.getSnapshot();
  assert.equal(snapshot.unread, 0);
  assert.equal(snapshot.read, 11);

  release();
  await nextTask();
  assert.equal(store.getSnapshot().unread, 0);
  assert.equal(store.getSnapshot().readPositions.size, 0, 'left: no positions');
});

test('a failed rejoin the SDK dropped shows as failed; a gap-fill error keeps the room joined', async () => {
  const room = new FakeRoom(range(1, 3), 10);
  let tracked = true;
  const store = new RoomStore<Text>(room, () => tracked);
  const release = store.acquire();
  await waitFor(() => store.getSnapshot().status === 'joined', { what: 'joined' });
  room.fire('error', new NerveClientError('unavailable', 'gap fill failed, retrying', { room: 'r' }));
  assert.equal(store.getSnapshot().status, 'joined');
  tracked = false;
  room.fire('error', new NerveClientError('forbidden', 'rejoining r failed', { room: 'r' }));
  assert.equal(store.getSnapshot().status, 'failed');
  release();
});

test('the connection snapshot stays the same object until something in it changes', () => {
  class FakeClient extends TypedEmitter<NerveClientEvents> {
    state: NerveClientEvents['state']['to'] = 'closed';
    user: string | undefined = undefined;
    connId: string | undefined = undefined;
    welcome = undefined;
    fire<K extends keyof NerveClientEvents>(name: K, value: NerveClientEvents[K]): void {
      this.emit(name, value);
    }
  }
  const client = new FakeClient();
  const store = new ConnectionStore(client);
  let renders = 0;
  store.subscribe(() => (renders += 1));
  const first = store.getSnapshot();
  assert.equal(store.getSnapshot(), first);
  client.state = 'connecting';
  client.fire('state', { from: 'closed', to: 'connecting' });
  assert.equal(store.getSnapshot().state, 'connecting');
  client.fire('state', { from: 'connecting', to: 'connecting' });
  assert.equal(renders, 1, 'an event that changes nothing does not re-render');
});

test('two call stores: a 1:1 call rings, is accepted, connects, mute shows at the peer, a third caller (new options) gets busy', async () => {
  const signals = hub();
  const make = (user: string): CallStore => new CallStore(signals.channel(user, `${user}-conn`));
  const options = { RTCPeerConnection: PC, getStream: () => Promise.resolve(fakeStream()), getTrack: () => Promise.reject(new Error('no devices')) };
  const alice = make('alice');
  const bob = make('bob');
  const carol = make('carol');
  const releases = [alice.acquire(options), bob.acquire(options), carol.acquire(options)];

  await alice.call('bob');
  assert.equal(alice.getSnapshot().state, 'ringing');
  await waitFor(() => bob.getSnapshot().incoming, { what: 'bob rings' });
  assert.equal(bob.getSnapshot().peer, 'alice');

  await bob.accept();
  await waitFor(() => alice.getSnapshot().state === 'connected' && bob.getSnapshot().state === 'connected', { what: 'both connected' });
  assert.ok(alice.getSnapshot().localStream, 'the caller holds its camera stream');

  await alice.setMicrophone(false);
  assert.equal(alice.getSnapshot().localMedia.audio, false);
  await waitFor(() => bob.getSnapshot().participants[0]?.media.audio === false, { what: 'bob sees alice muted' });

  // useCall's latest render: new options count from the next call on.
  let cameras = 0;
  carol.configure({
    ...options,
    getStream: () => {
      cameras += 1;
      return Promise.resolve(fakeStream());
    },
  });
  await carol.call('bob');
  assert.equal(cameras, 1, "carol's call used the options configured after the acquire");
  await waitFor(() => carol.getSnapshot().ended?.reason === 'busy', { what: 'carol gets busy' });
  assert.equal(bob.getSnapshot().state, 'connected', "bob's call goes on");

  alice.hangup();
  assert.deepEqual(alice.getSnapshot().ended, { peer: 'bob', reason: 'local' });
  assert.equal(alice.getSnapshot().localStream, undefined, 'the camera is released');
  await waitFor(() => bob.getSnapshot().ended?.reason === 'remote', { what: 'bob sees the hang-up' });
  assert.equal(bob.getSnapshot().kind, 'none');
  for (const release of releases) release();
  await nextTask();
});

test('three call stores: a group call invites, both accept, and every pair connects', async () => {
  const signals = hub();
  const options = { RTCPeerConnection: PC, getStream: () => Promise.resolve(fakeStream()) };
  const [alice, bob, carol] = ['alice', 'bob', 'carol'].map((user) => new CallStore(signals.channel(user, `${user}-conn`)));
  const releases = [alice!, bob!, carol!].map((store) => store.acquire(options));

  await alice!.startGroup('r', ['bob', 'carol']);
  assert.equal(alice!.getSnapshot().kind, 'group');
  assert.equal(alice!.getSnapshot().state, 'ringing', 'nobody is in yet');
  await waitFor(() => bob!.getSnapshot().invite && carol!.getSnapshot().invite, { what: 'both invited' });
  assert.equal(bob!.getSnapshot().invite?.from, 'alice');
  await bob!.accept();
  await carol!.accept();
  const connected = (store: CallStore, count: number): boolean =>
    store.getSnapshot().participants.length === count && store.getSnapshot().participants.every((person) => person.state === 'connected');
  await waitFor(() => connected(alice!, 2) && connected(bob!, 2) && connected(carol!, 2), { what: 'every pair connected' });
  assert.equal(carol!.getSnapshot().state, 'connected');
  assert.deepEqual(
    carol!
      .getSnapshot()
      .participants.map((person) => person.user)
      .sort(),
    ['alice', 'bob'],
  );

  bob!.hangup();
  assert.deepEqual(bob!.getSnapshot().ended, { peer: undefined, reason: 'local' });
  await waitFor(() => alice!.getSnapshot().participants.length === 1 && carol!.getSnapshot().participants.length === 1, { what: 'bob gone at both' });
  for (const release of releases) release();
  await nextTask();
  assert.equal(alice!.getSnapshot().kind, 'none', 'the last release hangs up');
});
