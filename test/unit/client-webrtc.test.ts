/**
 * PeerCall's perfect negotiation against a fake RTCPeerConnection (the
 * signaling state machine only: stable / have-local-offer / have-remote-offer,
 * implicit rollback) and a fake signal hub. The real thing runs in
 * test/browser/call.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, NerveClientError, PeerCall, isPolite, type SignalChannel } from '../../packages/client/src/index.js';
import type { AckFrame, SignalDelivery, SignalKind, WelcomeFrame } from '../../packages/protocol/src/frames.js';
import { waitFor } from '../helpers/wait.js';

type Handler = ((event: unknown) => void) | null;

class FakePeerConnection {
  static created: FakePeerConnection[] = [];
  signalingState: RTCSignalingState = 'stable';
  connectionState: RTCPeerConnectionState = 'new';
  iceConnectionState: RTCIceConnectionState = 'new';
  localDescription: { type: RTCSdpType; sdp: string } | null = null;
  remoteDescription: RTCSessionDescriptionInit | null = null;
  onnegotiationneeded: Handler = null;
  onicecandidate: Handler = null;
  oniceconnectionstatechange: Handler = null;
  onconnectionstatechange: Handler = null;
  ontrack: Handler = null;
  readonly candidates: unknown[] = [];
  readonly offersMade: string[] = [];
  #needsNegotiation = false;
  #ops: Promise<unknown> = Promise.resolve();
  #count = 0;

  constructor(
    readonly config: RTCConfiguration,
    readonly name = `pc${FakePeerConnection.created.length}`,
  ) {
    FakePeerConnection.created.push(this);
  }

  addTrack(): void {
    this.#needsNegotiation = true;
    this.#maybeNegotiate();
  }

  // Like the real thing, description operations run one after another, in call order.
  setLocalDescription(description?: { type: 'rollback' }): Promise<void> {
    return this.#chain(() => {
      if (description?.type === 'rollback') throw new Error('explicit rollback not expected');
      this.#count += 1;
      if (this.signalingState === 'stable') {
        const sdp = `${this.name}-offer-${this.#count}`;
        this.localDescription = { type: 'offer', sdp };
        this.offersMade.push(sdp);
        this.signalingState = 'have-local-offer';
        this.#needsNegotiation = false;
        setTimeout(() => this.onicecandidate?.({ candidate: { toJSON: () => ({ candidate: `cand-${this.name}`, sdpMid: '0' }) } }), 0);
      } else if (this.signalingState === 'have-remote-offer') {
        this.localDescription = { type: 'answer', sdp: `${this.name}-answer-${this.#count}` };
        this.signalingState = 'stable';
        this.#needsNegotiation = false;
        this.#connected();
      } else {
        throw new Error(`InvalidStateError: setLocalDescription in ${this.signalingState}`);
      }
    });
  }

  setRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
    return this.#chain(() => {
      if (description.type === 'offer') {
        if (this.signalingState === 'have-local-offer') {
          // Implicit rollback (what modern browsers do): our offer is dropped and must be made again.
          this.localDescription = null;
          this.#needsNegotiation = true;
        } else if (this.signalingState !== 'stable') {
          throw new Error(`InvalidStateError: offer in ${this.signalingState}`);
        }
        this.remoteDescription = description;
        this.signalingState = 'have-remote-offer';
      } else if (description.type === 'answer') {
        if (this.signalingState !== 'have-local-offer') throw new Error(`InvalidStateError: answer in ${this.signalingState}`);
        this.remoteDescription = description;
        this.signalingState = 'stable';
        this.#connected();
      }
    });
  }

  addIceCandidate(candidate: unknown): Promise<void> {
    return this.#chain(() => {
      if (!this.remoteDescription) throw new Error('InvalidStateError: no remote description');
      this.candidates.push(candidate);
    });
  }

  restartIce(): void {}

  close(): void {
    this.signalingState = 'closed';
    this.connectionState = 'closed';
  }

  #chain(step: () => void): Promise<void> {
    const next = this.#ops.then(async () => {
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (this.signalingState === 'closed') throw new Error('InvalidStateError: closed');
      step();
    });
    this.#ops = next.catch(() => {});
    return next;
  }

  #connected(): void {
    if (this.connectionState !== 'connected') {
      this.connectionState = 'connected';
      this.onconnectionstatechange?.({});
    }
    this.#maybeNegotiate();
  }

  #maybeNegotiate(): void {
    setTimeout(() => {
      if (this.#needsNegotiation && this.signalingState === 'stable') this.onnegotiationneeded?.({});
    }, 0);
  }
}

const PC = FakePeerConnection as unknown as typeof RTCPeerConnection;
const STREAM = { getTracks: () => [{ kind: 'video' }] } as unknown as MediaStream;

/** Users and their connections; signals are delivered asynchronously, in order per sender → recipient. */
function hub() {
  const connections: FakeChannel[] = [];
  class FakeChannel implements SignalChannel {
    readonly welcome: WelcomeFrame | undefined = undefined;
    readonly received: SignalDelivery[] = [];
    readonly #listeners = new Set<(signal: SignalDelivery) => void>();
    constructor(
      readonly user: string,
      readonly connId: string,
    ) {
      connections.push(this);
    }
    on(_name: 'signal', listener: (signal: SignalDelivery) => void): () => void {
      this.#listeners.add(listener);
      return () => this.#listeners.delete(listener);
    }
    signal(to: string, kind: SignalKind, data: unknown): Promise<AckFrame> {
      const targets = connections.filter((connection) => connection.user === to);
      if (targets.length === 0) return Promise.reject(new NerveClientError(ErrorCode.PeerOffline, 'offline'));
      const delivery: SignalDelivery = { op: 'signal', id: 's', from: this.user, fromConn: this.connId, kind, data, ts: 0 };
      for (const target of targets) {
        setTimeout(() => {
          target.received.push(delivery);
          for (const listener of [...target.#listeners]) listener(delivery);
        }, 0);
      }
      return Promise.resolve({ op: 'ack', rid: 0, id: 'a', ts: 0 });
    }
  }
  return { channel: (user: string, connId: string) => new FakeChannel(user, connId) };
}

function settled(call: PeerCall): boolean {
  const pc = call.pc as unknown as FakePeerConnection;
  return pc.signalingState === 'stable' && pc.connectionState === 'connected' && pc.remoteDescription !== null;
}

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
