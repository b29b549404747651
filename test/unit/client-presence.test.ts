/**
 * Presence state in the SDK against the scripted fake server: the room's
 * member map follows `joined` and the member frames (updated before the
 * event is emitted), `setPresence` sends `presence_set`, the state goes
 * again with the rejoin of a new connection (so it survives a move to
 * another node), and a large room's `member_count` keeps the count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EPOCH, harness, joined } from '../helpers/fake-server.js';
import { waitFor } from '../helpers/wait.js';

test('room.members follows joined and member frames; setPresence is sent, and sent again on a rejoin', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const first = await accept(0);
  const room = client.room('lobby');
  const joining = room.join({ presence: { status: 'here' } });
  const join = await request(first, 'join');
  assert.deepEqual(join.state, { status: 'here' });
  first.receive({
    ...joined(join.rid, { offset: 0, epoch: EPOCH }),
    members: [
      { user: 'alice', since: 1, state: { status: 'here' } },
      { user: 'bob', since: 2 },
    ],
    count: 2,
  });
  await joining;
  assert.deepEqual([...room.members.map.keys()], ['alice', 'bob']);
  assert.equal(room.members.count, 2);

  // The map is updated before the event reaches the app.
  const seen: unknown[] = [];
  room.on('member_updated', (frame) => seen.push([frame.user, room.members.state(frame.user)]));
  first.receive({ op: 'member_updated', room: 'lobby', user: 'bob', state: { status: 'away' }, ts: 3 });
  assert.deepEqual(seen, [['bob', { status: 'away' }]]);
  first.receive({ op: 'member_joined', room: 'lobby', user: 'carol', ts: 4, count: 3, state: { n: 1 } });
  assert.deepEqual([room.members.count, room.members.state('carol')], [3, { n: 1 }]);
  first.receive({ op: 'member_left', room: 'lobby', user: 'bob', ts: 5, count: 2 });
  assert.deepEqual([[...room.members.map.keys()], room.members.count, room.members.complete], [['alice', 'carol'], 2, true]);

  const setting = room.setPresence({ status: 'away' });
  const set = await request(first, 'presence_set');
  assert.deepEqual([set.room, set.state], ['lobby', { status: 'away' }]);
  first.receive({ op: 'presence_set', rid: set.rid, room: 'lobby', state: { status: 'away', name: 'Alice' } });
  assert.deepEqual(await setting, { status: 'away', name: 'Alice' });
  assert.deepEqual(room.members.state('alice'), { status: 'away', name: 'Alice' }, 'your own entry follows the answer');

  first.drop(1006);
  const second = await accept(1);
  const rejoin = await request(second, 'join');
  assert.deepEqual(rejoin.state, { status: 'away' }, 'the last state set goes with the rejoin');
  second.receive({ ...joined(rejoin.rid, { offset: 0, epoch: EPOCH }, [], true), members: [{ user: 'alice', since: 9, state: { status: 'away' } }], count: 1 });
  await waitFor(() => room.members.count === 1, { what: 'the rejoin answer folded in' });
  await client.close();
});

test('a large room keeps the count from member_count, and reads the list again when it is listed', async () => {
  const { client, accept, request } = harness();
  void client.connect();
  const socket = await accept(0);
  const room = client.room('lobby');
  const joining = room.join();
  const join = await request(socket, 'join');
  socket.receive({ ...joined(join.rid, { offset: 0, epoch: EPOCH }), members: [{ user: 'alice', since: 1 }], count: 5000 });
  await joining;
  assert.deepEqual([room.members.count, room.members.complete], [5000, false]);
  const counts: number[] = [];
  client.on('member_count', (frame) => counts.push(frame.count));
  socket.receive({ op: 'member_count', room: 'lobby', count: 5200, joined: 210, left: 10, listed: false, ts: 2 });
  assert.deepEqual([room.members.count, counts], [5200, [5200]]);
  socket.receive({ op: 'member_count', room: 'lobby', count: 2, joined: 0, left: 5198, listed: true, ts: 3 });
  const presence = await request(socket, 'presence');
  socket.receive({
    op: 'presence',
    rid: presence.rid,
    room: 'lobby',
    members: [
      { user: 'alice', since: 1 },
      { user: 'bob', since: 2 },
    ],
    count: 2,
  });
  await waitFor(() => room.members.map.has('bob'), { what: 'the list read again' });
  assert.equal(room.members.complete, true);
  await client.close();
});
