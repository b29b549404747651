/**
 * RoomCall's mesh against the WebRTC fakes of test/helpers/fake-rtc.ts:
 * invitees who join at once still end up with a pair call to everyone,
 * a full call answers busy, and a group call's signals never reach a 1:1
 * PeerCall with the same person. Four tabs on two nodes run in
 * test/browser/demo-group-call.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerCall, RoomCall, type RoomCallInvite } from '../../packages/client/src/index.js';
import { PC, fakeStream, hub, settled } from '../helpers/fake-rtc.js';
import { waitFor } from '../helpers/wait.js';

type Channel = ReturnType<ReturnType<typeof hub>['channel']>;

function inviteAt(channel: Channel): Promise<RoomCallInvite> {
  return waitFor(
    () => {
      for (const signal of channel.received) {
        const invite = RoomCall.invitation(signal);
        if (invite) return invite;
      }
      return undefined;
    },
    { what: `invite at ${channel.user}` },
  );
}

function meshSettled(calls: RoomCall[], size: number): boolean {
  return calls.every((call) => call.peers.size === size - 1 && [...call.peers.values()].every((pair) => settled(pair) && pair.callState === 'connected'));
}

test('four people: the inviter and three invitees who join at once all connect pairwise', async () => {
  const { channel } = hub();
  const users = ['ann', 'ben', 'cat', 'dan'].map((user, index) => channel(user, `c${index}`));
  const [ann, ...others] = users as [Channel, ...Channel[]];
  const host = new RoomCall({ client: ann, room: 'r', RTCPeerConnection: PC, stream: fakeStream() });
  host.invite(others.map((other) => other.user));
  const invites = await Promise.all(others.map(inviteAt));
  assert.deepEqual(invites[0], { callId: host.callId, room: 'r', from: 'ann', members: ['ann'] });
  // All three accept before any of them has reached anyone: they learn each other from ann.
  const guests = others.map((other, index) => {
    const guest = new RoomCall({ client: other, room: 'r', callId: invites[index]!.callId, RTCPeerConnection: PC, stream: fakeStream() });
    guest.join(invites[index]!.members);
    return guest;
  });
  const all = [host, ...guests];
  for (const call of all) call.on('error', (error) => assert.fail(error));
  await waitFor(() => meshSettled(all, 4), { what: 'six connected pairs' });
  assert.deepEqual([...host.peers.keys()].sort(), ['ben', 'cat', 'dan']);

  // Leaving hangs up each pair: the others drop that peer and keep the rest.
  const left: string[] = [];
  host.on('peer_left', ({ user }) => left.push(user));
  guests[2]!.leave();
  await waitFor(() => left.includes('dan') && guests[0]!.peers.size === 2 && guests[1]!.peers.size === 2, { what: 'dan gone everywhere' });
  assert.equal(host.peers.size, 2);
  for (const call of all) call.leave();
});

test('a full call answers a newcomer busy; group signals do not reach a 1:1 call', async () => {
  const { channel } = hub();
  const ann = channel('ann', 'a1');
  const ben = channel('ben', 'b1');
  const cat = channel('cat', 'c1');
  // Ben also has a 1:1 call with ann open: it must not see the group call's signals.
  const oneToOne = new PeerCall({ client: ben, peer: 'ann', RTCPeerConnection: PC });
  const host = new RoomCall({ client: ann, room: 'r', maxSize: 2, RTCPeerConnection: PC, stream: fakeStream() });
  const benCall = new RoomCall({ client: ben, room: 'r', callId: host.callId, RTCPeerConnection: PC, stream: fakeStream() });
  benCall.join(['ann']);
  await waitFor(() => meshSettled([host, benCall], 2), { what: 'ann and ben connected' });
  assert.equal(oneToOne.callState, 'new', 'the 1:1 call saw nothing');
  assert.equal((oneToOne.pc as unknown as { remoteDescription: unknown }).remoteDescription, null);

  const catCall = new RoomCall({ client: cat, room: 'r', callId: host.callId, RTCPeerConnection: PC, stream: fakeStream() });
  const ended = new Promise<string>((resolve) => catCall.on('peer_left', ({ reason }) => resolve(reason)));
  catCall.join(['ann']);
  assert.equal(await ended, 'busy');
  assert.equal(host.peers.size, 1);
  for (const call of [host, benCall, catCall]) call.leave();
  oneToOne.close();
});
