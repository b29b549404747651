/**
 * PeerCall's call states and control messages against the WebRTC fakes of
 * test/helpers/fake-rtc.ts: ringing until the callee answers, accepted,
 * declined, busy, cancelled, unanswered, answered on another tab; mute and
 * camera toggles that stop and restart tracks and reach the peer. The real
 * thing runs in test/browser/demo-call.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeerCall, type CallEndReason, type CallState, type MediaState } from '../../packages/client/src/index.js';
import type { SignalDelivery } from '../../packages/protocol/src/frames.js';
import { FakePeerConnection, FakeTrack, PC, fakeStream, hub, settled } from '../helpers/fake-rtc.js';
import { waitFor } from '../helpers/wait.js';

type Channel = ReturnType<ReturnType<typeof hub>['channel']>;

/** The call's states as they change, and how it ended. */
function record(call: PeerCall) {
  const states: CallState[] = [call.callState];
  const remote: MediaState[] = [];
  let ended: CallEndReason | undefined;
  call.on('call_state', ({ state }) => states.push(state));
  call.on('remote_media', (media) => remote.push(media));
  call.on('ended', ({ reason }) => (ended = reason));
  call.on('error', (error) => assert.fail(`call error: ${error.message}`));
  return {
    states,
    remote,
    get ended() {
      return ended;
    },
  };
}

function offerAt(channel: Channel): Promise<SignalDelivery> {
  return waitFor(() => channel.received.find((signal) => signal.kind === 'offer'), { what: `offer at ${channel.connId}` });
}

/** Alice calls Bob; Bob's side rings: an incoming PeerCall made when the offer arrives, as an app does. */
async function ring(options: { ringTimeoutMs?: number } = {}) {
  const { channel } = hub();
  const alice = channel('alice', 'a1');
  const bob = channel('bob', 'b1');
  const incoming = new Promise<PeerCall>((resolve) => {
    const off = bob.on('signal', (signal) => {
      if (signal.kind !== 'offer') return;
      off();
      resolve(new PeerCall({ client: bob, peer: 'alice', incoming: signal, RTCPeerConnection: PC, ...options }));
    });
  });
  const caller = new PeerCall({ client: alice, peer: 'bob', RTCPeerConnection: PC, ...options });
  const callerLog = record(caller);
  caller.start(fakeStream());
  const callee = await incoming;
  const calleeLog = record(callee);
  const offer = await offerAt(bob);
  return { channel, alice, bob, caller, callee, callerLog, calleeLog, offer };
}

test('the caller rings until the callee accepts, then the call connects', async () => {
  const { caller, callee, callerLog, calleeLog, bob } = await ring();
  assert.equal(caller.callState, 'ringing');
  assert.equal(callee.callState, 'ringing');
  assert.equal(callee.incoming, true);
  // The caller's candidate reaches Bob while he decides; the incoming call holds it.
  await waitFor(() => bob.received.some((signal) => signal.kind === 'candidate'), { what: 'candidate at bob' });
  assert.equal(caller.callState, 'ringing', 'still ringing: nobody answered');
  assert.equal((callee.pc as unknown as FakePeerConnection).remoteDescription, null, 'nothing applied before accept');

  await callee.accept(fakeStream());
  await waitFor(() => settled(caller) && settled(callee), { what: 'both stable and connected' });
  await waitFor(() => caller.callState === 'connected' && callee.callState === 'connected', { what: 'both connected' });
  assert.deepEqual(callerLog.states, ['new', 'ringing', 'accepted', 'connected']);
  assert.deepEqual(calleeLog.states, ['ringing', 'accepted', 'connected']);
  await waitFor(() => (callee.pc as unknown as FakePeerConnection).candidates.length > 0, { what: 'held candidate applied' });

  caller.hangup();
  await waitFor(() => calleeLog.ended, { what: 'callee ended' });
  assert.equal(calleeLog.ended, 'remote');
  assert.equal(callee.callState, 'ended');
});

test('a declined call ends declined on both sides; the callee’s other tab stops ringing', async () => {
  const { channel, caller, callee, callerLog, offer } = await ring();
  const bobTab2 = channel('bob', 'b2');
  const secondTab = new PeerCall({ client: bobTab2, peer: 'alice', incoming: offer, RTCPeerConnection: PC });
  const secondLog = record(secondTab);
  callee.decline();
  await waitFor(() => callerLog.ended, { what: 'caller ended' });
  assert.equal(callerLog.ended, 'declined');
  assert.equal(caller.callState, 'declined');
  assert.equal(callee.callState, 'declined');
  // The caller's bye after the decline goes to every tab of Bob.
  await waitFor(() => secondLog.ended, { what: 'second tab ended' });
  assert.equal(secondLog.ended, 'remote');
});

test('a busy callee ends the call busy without creating a PeerCall', async () => {
  const { channel } = hub();
  const alice = channel('alice', 'a1');
  const bob = channel('bob', 'b1');
  const caller = new PeerCall({ client: alice, peer: 'bob', RTCPeerConnection: PC });
  const log = record(caller);
  caller.start(fakeStream());
  await PeerCall.reject(bob, await offerAt(bob), 'busy');
  await waitFor(() => log.ended, { what: 'caller ended' });
  assert.equal(log.ended, 'busy');
  assert.deepEqual(log.states, ['new', 'ringing', 'busy']);
});

test('a caller who gives up stops the ringing; an unanswered call ends no_answer', async () => {
  const first = await ring();
  first.caller.hangup();
  await waitFor(() => first.calleeLog.ended, { what: 'callee ended' });
  assert.equal(first.calleeLog.ended, 'remote');
  assert.equal(first.callee.callState, 'ended');

  const second = await ring({ ringTimeoutMs: 30 });
  await waitFor(() => second.callerLog.ended && second.calleeLog.ended, { what: 'both ended' });
  assert.equal(second.callerLog.ended, 'no_answer');
  // Whichever timer fired first, the callee stopped ringing.
  assert.ok(['no_answer', 'remote'].includes(second.calleeLog.ended ?? ''), String(second.calleeLog.ended));
});

test('answered on one tab: the other tab stops ringing with answered_elsewhere', async () => {
  const { channel, caller, callee, offer } = await ring();
  const bobTab2 = channel('bob', 'b2');
  const secondTab = new PeerCall({ client: bobTab2, peer: 'alice', incoming: offer, RTCPeerConnection: PC });
  const secondLog = record(secondTab);
  await callee.accept(fakeStream());
  await waitFor(() => caller.callState === 'connected', { what: 'caller connected' });
  // Alice now addresses b1 only (her media state carries toConn b1): b2 sees it is not its call.
  await waitFor(() => secondLog.ended, { what: 'second tab ended' });
  assert.equal(secondLog.ended, 'answered_elsewhere');
  assert.equal(callee.callState, 'connected');
  callee.hangup();
});

test('mute and camera stop the local tracks, show at the peer, and do not renegotiate', async () => {
  const { caller, callee, callerLog } = await ring();
  const bobStream = fakeStream();
  const bobAudio = bobStream.tracks[0]!;
  const bobVideo = bobStream.tracks[1]!;
  await callee.accept(bobStream);
  await waitFor(() => settled(caller) && settled(callee), { what: 'connected' });
  // The media state Bob sends on accept.
  await waitFor(() => callerLog.remote.length > 0, { what: 'initial media state' });
  assert.deepEqual(caller.remoteMedia, { audio: true, video: true });
  const bobPc = callee.pc as unknown as FakePeerConnection;
  const offersBefore = bobPc.offersMade.length + (caller.pc as unknown as FakePeerConnection).offersMade.length;

  await callee.setMicrophone(false);
  assert.equal(bobAudio.readyState, 'ended');
  assert.ok(!bobStream.tracks.includes(bobAudio), 'stopped track left the stream');
  assert.equal(
    bobPc.senders.find((sender) => sender.track === bobAudio),
    undefined,
  );
  await waitFor(() => !caller.remoteMedia.audio, { what: 'muted at alice' });
  assert.deepEqual(callee.localMedia, { audio: false, video: true });

  await callee.setCamera(false);
  assert.equal(bobVideo.readyState, 'ended');
  await waitFor(() => !caller.remoteMedia.video, { what: 'camera off at alice' });

  await caller.setCamera(false);
  await waitFor(() => !callee.remoteMedia.video, { what: 'alice camera off at bob' });
  assert.deepEqual(
    callerLog.remote.map((media) => `${media.audio}/${media.video}`),
    ['true/true', 'false/true', 'false/false'],
  );
  const offersAfter = bobPc.offersMade.length + (caller.pc as unknown as FakePeerConnection).offersMade.length;
  assert.equal(offersAfter, offersBefore, 'no renegotiation for a toggle');
  caller.hangup();
});

test('switching the camera back on puts a fresh track on the same sender', async () => {
  const { channel } = hub();
  const alice = channel('alice', 'a1');
  const bob = channel('bob', 'b1');
  const fresh: FakeTrack[] = [];
  const getTrack = (kind: 'audio' | 'video') => {
    const track = new FakeTrack(kind);
    fresh.push(track);
    return Promise.resolve(track as unknown as MediaStreamTrack);
  };
  const aliceStream = fakeStream();
  const caller = new PeerCall({ client: alice, peer: 'bob', RTCPeerConnection: PC, getTrack });
  caller.start(aliceStream);
  const callee = new PeerCall({ client: bob, peer: 'alice', incoming: await offerAt(bob), RTCPeerConnection: PC });
  const seen: MediaState[] = [];
  callee.on('remote_media', (media) => seen.push(media));
  await callee.accept(fakeStream());
  await waitFor(() => settled(caller) && settled(callee), { what: 'connected' });
  const alicePc = caller.pc as unknown as FakePeerConnection;
  const videoSender = alicePc.senders.find((sender) => sender.track?.kind === 'video');
  assert.ok(videoSender);
  const offers = alicePc.offersMade.length;

  await caller.setCamera(false);
  assert.equal(videoSender.track, null);
  await caller.setCamera(true);
  assert.equal(fresh.length, 1);
  assert.equal(videoSender.track, fresh[0], 'the same sender sends the new track');
  assert.ok(aliceStream.tracks.includes(fresh[0]!), 'the local stream shows the new track');
  assert.equal(alicePc.senders.length, 2, 'no sender added');
  assert.equal(alicePc.offersMade.length, offers, 'no renegotiation');
  await waitFor(() => seen.at(-1)?.video === true && seen.some((media) => !media.video), { what: 'off then on at bob' });
  caller.hangup();
});

test("an app's own custom signals pass through a call untouched", async () => {
  const { caller, callee, callerLog, bob } = await ring();
  await callee.accept(fakeStream());
  await waitFor(() => caller.callState === 'connected', { what: 'connected' });
  await waitFor(() => callerLog.remote.length > 0, { what: 'media state' });
  const before = callerLog.remote.length;
  await bob.signal('alice', 'custom', { reaction: '👍' });
  await bob.signal('alice', 'custom', { call: 'media', audio: false, video: false });
  await waitFor(() => callerLog.remote.length > before, { what: 'the control message' });
  assert.equal(callerLog.remote.length, before + 1, 'only the control message counted');
  assert.equal(caller.callState, 'connected');
  caller.hangup();
});
