/**
 * The SDK's side of server-timed calls: PeerCall with `room` and RoomCall
 * tell the server (`call` op through `SignalChannel.call`) when they are
 * first connected and when they end, over the WebRTC fakes; the client
 * joins its calls again after a reconnect (fake server). The server's side
 * is test/integration/calls-node.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerCall, RoomCall, pairCallId } from '../../packages/client/src/index.js';
import { isValidRoomId } from '../../packages/protocol/src/ids.js';
import { PC, fakeStream, hub } from '../helpers/fake-rtc.js';
import { EPOCH, joined, joinedLobby, type FakeSocket } from '../helpers/fake-server.js';
import { waitFor } from '../helpers/wait.js';

type Timing = Array<[user: string, room: string, call: string, action: string]>;

/** A hub whose channels record their `call` requests. */
function timedHub(timing: Timing) {
  const { channel } = hub();
  return (user: string, connId: string) =>
    Object.assign(channel(user, connId), {
      call(room: string, call: string, action: 'join' | 'leave'): Promise<unknown> {
        timing.push([user, room, call, action]);
        return Promise.resolve({});
      },
    });
}

test('pairCallId is the same on both sides, and a valid call id', () => {
  assert.equal(pairCallId('alice', 'bob@example.org'), pairCallId('bob@example.org', 'alice'));
  assert.notEqual(pairCallId('alice', 'bob'), pairCallId('alice', 'carol'));
  assert.ok(isValidRoomId(pairCallId('alice', 'bob@example.org')));
});

test('a 1:1 PeerCall with a room joins the server call when connected and leaves it at the end', async () => {
  const timing: Timing = [];
  const channel = timedHub(timing);
  const alice = channel('alice', 'a1');
  const bob = channel('bob', 'b1');
  const incoming = new Promise<PeerCall>((resolve) => {
    const off = bob.on('signal', (signal) => {
      if (signal.kind !== 'offer') return;
      off();
      resolve(new PeerCall({ client: bob, peer: 'alice', incoming: signal, RTCPeerConnection: PC, room: 'lobby' }));
    });
  });
  const caller = new PeerCall({ client: alice, peer: 'bob', RTCPeerConnection: PC, room: 'lobby' });
  caller.start(fakeStream());
  const callee = await incoming;
  assert.deepEqual(timing, [], 'nothing while ringing');
  await callee.accept(fakeStream());
  await waitFor(() => caller.callState === 'connected' && callee.callState === 'connected', { what: 'both connected' });
  const id = pairCallId('alice', 'bob');
  assert.deepEqual(timing.sort(), [
    ['alice', 'lobby', id, 'join'],
    ['bob', 'lobby', id, 'join'],
  ]);
  caller.hangup();
  await waitFor(() => callee.callState === 'ended', { what: 'callee ended' });
  assert.deepEqual(timing.filter((entry) => entry[3] === 'leave').sort(), [
    ['alice', 'lobby', id, 'leave'],
    ['bob', 'lobby', id, 'leave'],
  ]);
});

test('a declined call, or one without a room, is never timed', async () => {
  const timing: Timing = [];
  const channel = timedHub(timing);
  const alice = channel('alice', 'a1');
  const bob = channel('bob', 'b1');
  const declined = new PeerCall({ client: alice, peer: 'bob', RTCPeerConnection: PC, room: 'lobby' });
  const ended = new Promise((resolve) => declined.on('ended', resolve));
  bob.on('signal', (signal) => {
    if (signal.kind === 'offer') void PeerCall.reject(bob, signal, 'busy');
  });
  declined.start(fakeStream());
  await ended;
  assert.equal(declined.callState, 'busy');
  // Without a room: connected and hung up, and still nothing timed.
  const carol = channel('carol', 'c1');
  const incoming = new Promise<PeerCall>((resolve) => {
    const off = carol.on('signal', (signal) => {
      if (signal.kind !== 'offer') return;
      off();
      resolve(new PeerCall({ client: carol, peer: 'alice', incoming: signal, RTCPeerConnection: PC }));
    });
  });
  const untimed = new PeerCall({ client: alice, peer: 'carol', RTCPeerConnection: PC });
  untimed.start(fakeStream());
  const callee = await incoming;
  await callee.accept(fakeStream());
  await waitFor(() => untimed.callState === 'connected' && callee.callState === 'connected', { what: 'the roomless call connected' });
  untimed.hangup();
  await waitFor(() => callee.callState === 'ended', { what: 'the roomless call ended' });
  assert.deepEqual(timing, []);
});

test('a RoomCall joins its call once, at the first connected pair, and leaves it on leave()', async () => {
  const timing: Timing = [];
  const channel = timedHub(timing);
  const users = ['ann', 'ben', 'cat'].map((user) => channel(user, `${user}-1`));
  const [ann, ben, cat] = users.map((client) => new RoomCall({ client, room: 'team', RTCPeerConnection: PC, stream: fakeStream(), callId: 'standup.call' }));
  ben!.join(['ann']);
  cat!.join(['ann']);
  await waitFor(() => ann!.peers.size === 2 && ben!.peers.size === 2 && cat!.peers.size === 2, { what: 'a full mesh' });
  await waitFor(() => [...ann!.peers.values(), ...ben!.peers.values(), ...cat!.peers.values()].every((call) => call.callState === 'connected'), {
    what: 'every pair connected',
  });
  assert.deepEqual(timing.sort(), [
    ['ann', 'team', 'standup.call', 'join'],
    ['ben', 'team', 'standup.call', 'join'],
    ['cat', 'team', 'standup.call', 'join'],
  ]);
  for (const call of [ann, ben, cat]) call!.leave();
  assert.equal(timing.filter((entry) => entry[3] === 'leave').length, 3);
});

test('a call joined with client.call() is joined again after a reconnect, once its room is', async () => {
  const { client, socket, accept, join } = await joinedLobby();
  const answer = (on: FakeSocket, frame: Record<string, unknown>): void => {
    const reply: Record<string, unknown> = { op: 'call', rid: frame.rid, room: 'lobby', call: frame.call, action: frame.action, ts: 1 };
    on.receive(reply);
  };
  for (const [call, action] of [
    ['standup', 'join'],
    ['retro', 'join'],
    ['retro', 'leave'],
  ] as const) {
    const pending = client.call('lobby', call, action);
    answer(socket, await waitFor(() => socket.ops('call').find((frame) => frame.call === call && frame.action === action), { what: `${call} ${action}` }));
    assert.equal((await pending).action, action);
  }
  socket.drop();
  const next = await accept(1);
  next.receive(joined((await join(next, 0)).rid, { offset: 2, epoch: EPOCH }));
  const again = await waitFor(() => next.last('call'), { what: 'the call joined again' });
  assert.deepEqual([again.room, again.call, again.action], ['lobby', 'standup', 'join']);
  answer(next, again);
  assert.equal(next.ops('call').length, 1, 'only the call still joined');
  await client.close();
});
