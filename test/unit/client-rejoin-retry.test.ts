/**
 * NerveClient: a rejoin after a reconnect that the server refuses for a
 * moment (`unavailable`: a lane timed out; found by the chaos soak) must not
 * drop the room. The client keeps the room, says so with an `error` event,
 * and joins again from the same position after the backoff, so the app
 * receives every missed message once. A refusal that is final (`forbidden`)
 * still drops the room. Scripted fake WebSocket, no server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/wait.js';
import { chat, EPOCH, joined, joinedLobby } from '../helpers/fake-server.js';

test('a rejoin answered unavailable is retried from the same position: nothing is lost, the room is kept', async () => {
  const { client, socket, accept, join, offsets, errors } = await joinedLobby();
  socket.receive(chat(3));
  socket.drop();
  const second = await accept(1);
  const rejoin = await join(second, 0);
  assert.deepEqual(rejoin.since, { offset: 3, epoch: EPOCH });
  second.receive({ op: 'error', rid: rejoin.rid, code: 'unavailable', message: 'history store unavailable' });
  await waitFor(() => errors.some((error) => error.room === 'lobby' && error.code === 'unavailable'), { what: 'the error event' });
  assert.deepEqual(
    client.rooms().map((entry) => entry.room),
    ['lobby'],
    'the room is kept',
  );
  const retry = await join(second, 1);
  assert.deepEqual(retry.since, { offset: 3, epoch: EPOCH }, 'the retry resumes from the same position');
  second.receive(joined(retry.rid, { offset: 5, epoch: EPOCH }, [chat(4), chat(5)], true));
  await waitFor(() => offsets.length === 3, { what: 'the missed messages' });
  second.receive(chat(6));
  await waitFor(() => offsets.length === 4, { what: 'live chat again' });
  assert.deepEqual(offsets, ['3', '4', '5', '6']);
  assert.deepEqual(client.position('lobby'), { offset: 6, epoch: EPOCH });
  await client.close();
});

test('a rejoin refused for good (forbidden) drops the room and says so', async () => {
  const { client, socket, accept, join, errors } = await joinedLobby();
  socket.drop();
  const second = await accept(1);
  const rejoin = await join(second, 0);
  second.receive({ op: 'error', rid: rejoin.rid, code: 'forbidden', message: 'no grant' });
  await waitFor(() => errors.some((error) => error.room === 'lobby' && error.code === 'forbidden'), { what: 'the error event' });
  assert.deepEqual(client.rooms(), [], 'the room is dropped');
  assert.equal(second.ops('join').length, 1, 'no retry');
  await client.close();
});
