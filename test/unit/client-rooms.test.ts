/**
 * `client.room<Chat, Ephemeral>(name)` (issue 17): one object per room name,
 * the client's events about that room re-emitted on it, its methods the
 * client's bound to the room, and `history()` pages. The type checks are in
 * this file too: `npm run typecheck` compiles it, so every
 * `@ts-expect-error` line must stay an error (else tsc fails on the unused
 * directive) and every typed assignment must stay allowed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ErrorCode,
  NerveClientError,
  type HistoryPage,
  type Room,
  type RoomChatMessage,
  type RoomEvents,
  type RoomJoined,
  type RoomMessage,
} from '../../packages/client/src/index.js';
import { EPOCH, chat, harness, joined } from '../helpers/fake-server.js';
import { waitFor } from '../helpers/wait.js';

interface ChatPayload {
  text: string;
}
interface Typing {
  typing: boolean;
}

/** Type-level equality: `true` only when A and B are the same type. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(_proof: T): void {}

test('room() is one object per name; its events are the client events about that room', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const socket = await accept(0);
  const lobby = client.room<ChatPayload, Typing>('lobby');
  assert.equal(client.room('lobby'), lobby, 'the same object for the same name');
  assert.notEqual(client.room('other'), lobby);
  const other = client.room('other');

  const seen: string[] = [];
  const texts: string[] = [];
  lobby.on('message', (message) => {
    seen.push(`lobby:${message.class}`);
    if (message.class === 'chat') texts.push(message.data.text);
    else seen.push(`typing:${message.data.typing}`);
  });
  other.on('message', () => seen.push('other'));
  client.on('message', (message) => seen.push(`client:${message.room}`));
  lobby.on('member_joined', (frame) => seen.push(`joined:${frame.user}`));
  lobby.on('room_ended', (frame) => seen.push(`ended:${frame.reason}`));

  const joining = lobby.join({ history: 1 });
  const join = await request(socket, 'join');
  assert.equal(join.history, 1);
  socket.receive(joined(join.rid, { offset: 1, epoch: EPOCH }, [{ ...chat(1), data: { text: 'older' } }]));
  const answer = await joining;
  expectType<Equal<typeof answer, RoomJoined<ChatPayload>>>(true);
  assert.equal(answer.history[0]!.data.text, 'older');
  assert.deepEqual(lobby.position, { offset: 1, epoch: EPOCH });

  socket.receive({ ...chat(2), data: { text: 'hello' } });
  socket.receive({ op: 'message', class: 'ephemeral', room: 'lobby', id: 'e1', from: 'bob', ts: 1, data: { typing: true }, key: 'typing' });
  socket.receive({ op: 'member_joined', room: 'lobby', user: 'carol', ts: 1 });
  socket.receive({ op: 'member_joined', room: 'elsewhere', user: 'dave', ts: 1 });
  socket.receive({ op: 'room_ended', room: 'lobby', reason: 'over', ts: 1 });
  assert.deepEqual(seen, ['client:lobby', 'lobby:chat', 'client:lobby', 'lobby:ephemeral', 'typing:true', 'joined:carol', 'ended:over']);
  assert.deepEqual(texts, ['hello']);
  await client.close();
});

test('room.publish sends the typed data to its room; errors of the room reach its error event', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const socket = await accept(0);
  const lobby = client.room<ChatPayload, Typing>('lobby');
  const joining = lobby.join();
  socket.receive(joined((await request(socket, 'join')).rid, { offset: 0, epoch: EPOCH }));
  await joining;

  const publishing = lobby.publish({ text: 'hi' });
  const publish = await request(socket, 'publish');
  assert.deepEqual([publish.room, publish.class, publish.data], ['lobby', 'chat', { text: 'hi' }]);
  socket.receive({ op: 'ack', rid: publish.rid, id: 'm1', ts: 1, offset: 1, epoch: EPOCH });
  assert.equal((await publishing).offset, 1);

  await lobby.publish({ typing: true }, { class: 'ephemeral', key: 'typing' });
  const ephemeral = await request(socket, 'publish', 1);
  assert.deepEqual([ephemeral.class, ephemeral.key, ephemeral.data], ['ephemeral', 'typing', { typing: true }]);

  const roomErrors: NerveClientError[] = [];
  lobby.on('error', (error) => roomErrors.push(error));
  // A gap whose fill is refused is an error of the room.
  socket.receive(chat(3));
  const fill = await request(socket, 'join', 1);
  socket.receive({ op: 'error', rid: fill.rid, code: 'forbidden', message: 'no' });
  await waitFor(() => roomErrors[0], { what: 'the room error' });
  assert.equal(roomErrors[0]!.code, ErrorCode.Forbidden);
  await client.close();
});

test('room.history sends the history frame and resolves with a typed page; paging goes on from the oldest offset', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const socket = await accept(0);
  const lobby = client.room<ChatPayload>('lobby');
  const joining = lobby.join();
  socket.receive(joined((await request(socket, 'join')).rid, { offset: 30, epoch: EPOCH }));
  await joining;
  const delivered: unknown[] = [];
  client.on('message', (message) => delivered.push(message));

  const message = (offset: number): RoomChatMessage<ChatPayload> => ({ ...chat(offset), data: { text: `m${offset}` } });
  const loading = lobby.history({ limit: 2 });
  const first = await request(socket, 'history');
  assert.deepEqual(
    { room: first.room, limit: first.limit, before: first.before, epoch: first.epoch },
    { room: 'lobby', limit: 2, before: undefined, epoch: undefined },
  );
  socket.receive({ op: 'history', rid: first.rid, room: 'lobby', messages: [message(29), message(30)], more: true, epoch: EPOCH });
  const page = await loading;
  expectType<Equal<typeof page, HistoryPage<ChatPayload>>>(true);
  assert.deepEqual(
    page.messages.map((m) => m.data.text),
    ['m29', 'm30'],
  );
  assert.equal(page.more, true);

  const older = lobby.history({ before: page.messages[0]!.offset, epoch: page.epoch, limit: 2 });
  const second = await request(socket, 'history', 1);
  assert.deepEqual([second.before, second.epoch, second.limit], [29, EPOCH, 2]);
  socket.receive({ op: 'history', rid: second.rid, room: 'lobby', messages: [message(28)], more: false, epoch: EPOCH });
  assert.deepEqual(
    (await older).messages.map((m) => m.offset),
    [28],
  );
  assert.deepEqual(delivered, [], 'history pages are not delivered as messages');
  assert.deepEqual(client.position('lobby'), { offset: 30, epoch: EPOCH }, 'nor do they move the position');

  const mismatch = client.history('lobby', { before: 5, epoch: 'old' });
  const third = await request(socket, 'history', 2);
  socket.receive({ op: 'error', rid: third.rid, code: 'epoch_mismatch', message: 'the room log is in another epoch' });
  await assert.rejects(mismatch, { code: 'epoch_mismatch', room: 'lobby' });
  await client.close();
});

test('a history request in flight when the socket drops is sent again after the room is rejoined', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const first = await accept(0);
  const joining = client.join('lobby');
  first.receive(joined((await request(first, 'join')).rid, { offset: 4, epoch: EPOCH }));
  await joining;
  const loading = client.history('lobby', { before: 3 });
  await request(first, 'history');
  first.drop(1006);
  const second = await accept(1);
  const rejoin = await request(second, 'join');
  second.receive(joined(rejoin.rid, { offset: 4, epoch: EPOCH }, [], true));
  const again = await request(second, 'history');
  assert.equal(again.before, 3);
  second.receive({ op: 'history', rid: again.rid, room: 'lobby', messages: [chat(2)], more: true, epoch: EPOCH });
  assert.equal((await loading).messages[0]!.offset, 2);
  await client.close();
});

// Compile-time checks only: never run (the client is never connected), but type-checked by `npm run typecheck`.
function typeChecks(room: Room<ChatPayload, Typing>, untyped: Room): void {
  void room.publish({ text: 'ok' });
  void room.publish({ typing: true }, { class: 'ephemeral' });
  // @ts-expect-error chat data must be a ChatPayload
  void room.publish({ txt: 'typo' });
  // @ts-expect-error ephemeral data must be a Typing
  void room.publish({ text: 'not typing' }, { class: 'ephemeral' });
  // @ts-expect-error a number is no ChatPayload
  void room.publish(42);
  room.on('message', (message: RoomMessage<ChatPayload, Typing>) => {
    if (message.class === 'chat') {
      const text: string = message.data.text;
      // @ts-expect-error chat data has no `typing`
      void message.data.typing;
      void text;
    } else {
      const typing: boolean = message.data.typing;
      void typing;
    }
  });
  room.on('rejoined', (answer) => {
    const text: string | undefined = answer.history[0]?.data.text;
    void text;
  });
  room.on('recovery_failed', ({ joined: answer }) => {
    // @ts-expect-error history data is typed
    const wrong: number = answer.history[0]!.data;
    void wrong;
  });
  // @ts-expect-error no such event
  room.on('signal', () => {});
  void room.history().then((page) => {
    const text: string | undefined = page.messages[0]?.data.text;
    void text;
  });
  // Untyped rooms take and give `unknown`, as the client does.
  void untyped.publish(Symbol.for('anything'));
  untyped.on('message', (message) => {
    // @ts-expect-error unknown data must be narrowed first
    void message.data.text;
  });
  const events: RoomEvents<ChatPayload>['message']['data'] = { text: 'chat and ephemeral share the type by default' };
  void events;
}
void typeChecks;
