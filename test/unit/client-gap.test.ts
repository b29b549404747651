/**
 * NerveClient gap handling against a scripted fake WebSocket: a chat offset
 * that jumps, an epoch change, or a `resync` frame make the client join the
 * room again with `since` and deliver the missed messages first; the position
 * never passes a gap that was not filled. No server, every wait is for a
 * condition.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/wait.js';
import { chat, EPOCH, joined, joinedLobby } from '../helpers/fake-server.js';

test('an offset jump is filled: rejoin with since, missed messages first, live ones held meanwhile, no duplicate', async () => {
  const { client, socket, join, offsets } = await joinedLobby();
  socket.receive(chat(3));
  socket.receive(chat(6)); // 4 and 5 were lost on the way
  const fill = await join(socket, 1);
  assert.deepEqual(fill.since, { offset: 3, epoch: EPOCH }, 'from the last offset before the gap');
  assert.deepEqual(offsets, ['3'], 'the message past the gap waits');
  assert.deepEqual(client.position('lobby'), { offset: 3, epoch: EPOCH }, 'the position does not pass an unfilled gap');
  socket.receive(chat(7)); // live, during the fill
  socket.receive(joined(fill.rid, { offset: 6, epoch: EPOCH }, [chat(4), chat(5), chat(6)], true));
  await waitFor(() => offsets.length === 5, { what: 'five messages' });
  assert.deepEqual(offsets, ['3', '4', '5', '6', '7']);
  assert.deepEqual(client.position('lobby'), { offset: 7, epoch: EPOCH });
  socket.receive(chat(7)); // a late duplicate
  socket.receive(chat(8));
  assert.deepEqual(offsets, ['3', '4', '5', '6', '7', '8']);
  assert.equal(socket.ops('join').length, 2, 'one fill, no more');
  await client.close();
});

test('a fill answered recovered:false emits recovery_failed, adopts the answer position, then delivers what follows it', async () => {
  const { client, socket, join, offsets, failures } = await joinedLobby();
  socket.receive(chat(3));
  socket.receive(chat(2000)); // more than the recovery limit missed
  const fill = await join(socket, 1);
  socket.receive(chat(2001));
  socket.receive(joined(fill.rid, { offset: 2000, epoch: EPOCH }, [chat(1999), chat(2000)], false));
  await waitFor(() => failures.length === 1, { what: 'recovery_failed' });
  assert.deepEqual(failures[0]!.position, { offset: 2000, epoch: EPOCH });
  await waitFor(() => offsets.length === 2, { what: 'the message after the answer' });
  assert.deepEqual(offsets, ['3', '2001'], "history is the app's to resync from; held messages at or below the position are dropped");
  assert.deepEqual(client.position('lobby'), { offset: 2001, epoch: EPOCH });
  await client.close();
});

test('a message of another epoch is a gap: rejoin with the old position, recovery_failed, then the new epoch', async () => {
  const { client, socket, join, offsets, failures } = await joinedLobby();
  socket.receive(chat(3));
  socket.receive(chat(1, 'e2'));
  const fill = await join(socket, 1);
  assert.deepEqual(fill.since, { offset: 3, epoch: EPOCH });
  socket.receive(joined(fill.rid, { offset: 1, epoch: 'e2' }, [chat(1, 'e2')], false));
  await waitFor(() => failures.length === 1, { what: 'recovery_failed' });
  assert.deepEqual(client.position('lobby'), { offset: 1, epoch: 'e2' });
  socket.receive(chat(2, 'e2'));
  await waitFor(() => offsets.length === 2, { what: 'the next message of the new epoch' });
  assert.deepEqual(offsets, ['3', 'e2:2']);
  await client.close();
});

test('a resync frame makes the client rejoin with since and deliver the missed messages', async () => {
  const { client, socket, join, offsets } = await joinedLobby();
  socket.receive(chat(3));
  socket.receive({ op: 'resync', room: 'lobby', reason: 'history_unavailable' });
  const fill = await join(socket, 1);
  assert.deepEqual(fill.since, { offset: 3, epoch: EPOCH });
  socket.receive(joined(fill.rid, { offset: 5, epoch: EPOCH }, [chat(4), chat(5)], true));
  await waitFor(() => offsets.length === 3, { what: 'the missed messages' });
  assert.deepEqual(offsets, ['3', '4', '5']);
  assert.deepEqual(client.position('lobby'), { offset: 5, epoch: EPOCH });
  await client.close();
});

test('a resync for a room not joined, or during a fill, does not send a second join at once', async () => {
  const { client, socket, join, offsets } = await joinedLobby();
  socket.receive({ op: 'resync', room: 'elsewhere', reason: 'unrecoverable' });
  socket.receive(chat(5));
  const fill = await join(socket, 1);
  socket.receive({ op: 'resync', room: 'lobby', reason: 'unrecoverable' });
  assert.equal(socket.ops('join').length, 2, 'the resync waits for the fill in flight');
  socket.receive(joined(fill.rid, { offset: 5, epoch: EPOCH }, [chat(3), chat(4), chat(5)], true));
  // ... and then asks again, from the new position: the fill's answer may predate the server's loss.
  const again = await join(socket, 2);
  assert.deepEqual(again.since, { offset: 5, epoch: EPOCH });
  socket.receive(joined(again.rid, { offset: 5, epoch: EPOCH }, [], true));
  await waitFor(() => offsets.length === 3, { what: 'three messages' });
  assert.deepEqual(offsets, ['3', '4', '5']);
  await client.close();
});

test('a failed fill keeps the position and the held messages, reports an error and retries', async () => {
  const { client, socket, join, offsets, errors } = await joinedLobby();
  socket.receive(chat(5));
  const fill = await join(socket, 1);
  socket.receive({ op: 'error', rid: fill.rid, code: 'unavailable', message: 'history unavailable' });
  await waitFor(() => errors.length === 1, { what: 'an error event' });
  assert.equal(errors[0]!.room, 'lobby');
  assert.deepEqual(client.position('lobby'), { offset: 2, epoch: EPOCH });
  assert.deepEqual(offsets, []);
  socket.receive(chat(6)); // still held
  const retry = await join(socket, 2);
  assert.deepEqual(retry.since, { offset: 2, epoch: EPOCH });
  socket.receive(joined(retry.rid, { offset: 6, epoch: EPOCH }, [chat(3), chat(4), chat(5), chat(6)], true));
  await waitFor(() => offsets.length === 4, { what: 'four messages' });
  assert.deepEqual(offsets, ['3', '4', '5', '6']);
  await client.close();
});

test("a fill cut by a disconnect is taken over by the reconnect's rejoin: every message once, in order", async () => {
  const { client, socket, accept, join, offsets } = await joinedLobby();
  socket.receive(chat(3));
  socket.receive(chat(6));
  await join(socket, 1);
  socket.drop();
  const second = await accept(1);
  const rejoin = await join(second, 0);
  assert.deepEqual(rejoin.since, { offset: 3, epoch: EPOCH }, 'the position stayed before the gap');
  second.receive(joined(rejoin.rid, { offset: 6, epoch: EPOCH }, [chat(4), chat(5), chat(6)], true));
  await waitFor(() => offsets.length === 4, { what: 'four messages' });
  assert.deepEqual(offsets, ['3', '4', '5', '6']);
  assert.equal(second.ops('join').length, 1, 'no extra fill after the rejoin');
  await client.close();
});

test('contiguous chat and a first message after an empty position need no fill', async () => {
  const { client, socket, offsets } = await joinedLobby({}, 0);
  for (let offset = 1; offset <= 5; offset += 1) socket.receive(chat(offset));
  assert.deepEqual(offsets, ['1', '2', '3', '4', '5']);
  assert.equal(socket.ops('join').length, 1);
  await client.close();
});

test('a reconnect rejoin whose replay has a hole does not adopt its position past the hole', async () => {
  const { client, socket, accept, join, offsets } = await joinedLobby();
  socket.receive(chat(3));
  socket.drop();
  const second = await accept(1);
  const rejoin = await join(second, 0);
  assert.deepEqual(rejoin.since, { offset: 3, epoch: EPOCH });
  // The answer skips offset 5 (a hole in what the server could read): the client must fetch it, not jump to 7.
  second.receive(joined(rejoin.rid, { offset: 7, epoch: EPOCH }, [chat(4), chat(6), chat(7)], true));
  const fill = await join(second, 1);
  assert.deepEqual(fill.since, { offset: 4, epoch: EPOCH }, 'the fill starts before the hole');
  assert.deepEqual(client.position('lobby'), { offset: 4, epoch: EPOCH }, 'the position stays before the unfilled hole');
  second.receive(joined(fill.rid, { offset: 7, epoch: EPOCH }, [chat(5), chat(6), chat(7)], true));
  await waitFor(() => offsets.length === 5, { what: 'every message once' });
  assert.deepEqual(offsets, ['3', '4', '5', '6', '7']);
  assert.deepEqual(client.position('lobby'), { offset: 7, epoch: EPOCH });
  await client.close();
});

test('a fill whose answer has a hole of its own ends in recovery_failed, not in a loop of fills', async () => {
  const { client, socket, join, offsets, failures } = await joinedLobby();
  socket.receive(chat(3));
  socket.receive(chat(6)); // 4 and 5 missing
  const fill = await join(socket, 1);
  // The server cannot read offset 5 either: its answer skips it.
  socket.receive(joined(fill.rid, { offset: 6, epoch: EPOCH }, [chat(4), chat(6)], true));
  await waitFor(() => failures.length === 1, { what: 'recovery_failed' });
  assert.deepEqual(client.position('lobby'), { offset: 6, epoch: EPOCH }, 'the answer position, for the app to resync from');
  socket.receive(chat(7));
  await waitFor(() => offsets.includes('7'), { what: 'live chat again' });
  assert.equal(socket.ops('join').length, 2, 'no further fill');
  await client.close();
});
