/**
 * PeerCall's perfect negotiation against a fake RTCPeerConnection and a fake
 * signal hub (test/helpers/fake-rtc.ts). The real thing runs in
 * test/browser/call.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerCall, isPolite } from '../../packages/client/src/index.js';
import { FakePeerConnection, PC, fakeStream, hub, settled } from '../helpers/fake-rtc.js';
import { waitFor } from '../helpers/wait.js';

const STREAM = fakeStream(['video']);

test('isPolite: the smaller user id is polite; two tabs of one user compare connection ids', () => {
  assert.equal(isPolite('alice', 'bob'), true);
  assert.equal(isPolite('bob', 'alice'), false);
  assert.equal(isPolite('u', 'u', 'c1', 'c2'), true);
  assert.equal(isPolite('u', 'u', 'c2', 'c1'), false);
});

test('one side calls, the other answers the offer it received before its PeerCall existed', async () => {
  const { channel } = hub();
  const alice = channel('alice', 'a1');
  const bob = channel('bob', 'b1');
  const errors: Error[] = [];
  const caller = new PeerCall({ client: alice, peer: 'bob', RTCPeerConnection: PC });
  caller.on('error', (error) => errors.push(error));
  caller.start(STREAM);
  const offer = await waitFor(() => bob.received.find((signal) => signal.kind === 'offer'), { what: 'offer at bob' });
  const callee = new PeerCall({ client: bob, peer: 'alice', RTCPeerConnection: PC });
  callee.on('error', (error) => errors.push(error));
  await callee.answer(offer, STREAM);
  // The candidate that followed the offer while bob was "ringing" is fed in by the app.
  for (const signal of bob.received.filter((s) => s.kind === 'candidate')) callee.receive(signal);
  await waitFor(() => settled(caller) && settled(callee), { what: 'both stable and connected' });
  await waitFor(() => (callee.pc as unknown as FakePeerConnection).candidates.length > 0, { what: 'candidate applied' });
  assert.deepEqual(errors, []);

  const ended = new Promise<string>((resolve) => callee.on('ended', ({ reason }) => resolve(reason)));
  caller.hangup();
  assert.equal(await ended, 'remote');
  // Once bob answered from b1, alice addresses b1 only: her bye names it.
  const bye = bob.received.find((signal) => signal.kind === 'bye');
  assert.equal((bye?.data as { toConn?: string } | undefined)?.toConn, 'b1');
  assert.equal(callee.pc.signalingState, 'closed');
  caller.hangup(); // idempotent
});

test('both call at once: the collision resolves and both sides end up stable and connected', async () => {
  const { channel } = hub();
  const alice = channel('alice', 'a1');
  const bob = channel('bob', 'b1');
  const errors: Error[] = [];
  const aliceCall = new PeerCall({ client: alice, peer: 'bob', RTCPeerConnection: PC });
  const bobCall = new PeerCall({ client: bob, peer: 'alice', RTCPeerConnection: PC });
  for (const call of [aliceCall, bobCall]) call.on('error', (error) => errors.push(error));
  assert.equal(aliceCall.polite, true);
  assert.equal(bobCall.polite, false);
  aliceCall.start(STREAM);
  bobCall.start(STREAM);
  await waitFor(() => settled(aliceCall) && settled(bobCall), { what: 'both stable and connected' });
  // Both offered; the impolite side (bob) ignored alice's offer, the polite side (alice) rolled hers back and answered.
  const alicePc = aliceCall.pc as unknown as FakePeerConnection;
  const bobPc = bobCall.pc as unknown as FakePeerConnection;
  assert.equal(alicePc.offersMade.length, 1);
  assert.equal(bobPc.offersMade.length, 1);
  assert.equal(alicePc.localDescription?.type, 'answer');
  assert.equal(alicePc.remoteDescription?.sdp, bobPc.offersMade[0]);
  assert.equal(bobPc.remoteDescription?.type, 'answer');
  assert.deepEqual(errors, []);
  aliceCall.close();
  bobCall.close();
});

test('calling a user who is connected nowhere ends the call with peer_offline', async () => {
  const { channel } = hub();
  const alice = channel('alice', 'a1');
  const call = new PeerCall({ client: alice, peer: 'ghost', RTCPeerConnection: PC });
  const ended = new Promise<string>((resolve) => call.on('ended', ({ reason }) => resolve(reason)));
  call.start(STREAM);
  assert.equal(await ended, 'peer_offline');
});
