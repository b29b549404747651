/**
 * WebRTC fakes for PeerCall's unit tests: a fake RTCPeerConnection (the
 * signaling state machine only: stable / have-local-offer /
 * have-remote-offer, implicit rollback; senders whose track can be
 * replaced), fake tracks and streams, and a fake signal hub. The real
 * thing runs in test/browser/call*.test.ts.
 */
import { ErrorCode, NerveClientError, type PeerCall, type SignalChannel } from '../../packages/client/src/index.js';
import type { AckFrame, SignalDelivery, SignalKind, WelcomeFrame } from '../../packages/protocol/src/frames.js';

type Handler = ((event: unknown) => void) | null;

export class FakePeerConnection {
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
  readonly senders: FakeSender[] = [];
  readonly offersMade: string[] = [];
  #needsNegotiation = false;
  /** `negotiationneeded` fired and no description was made since: like a browser, do not fire it again. */
  #negotiationFired = false;
  #ops: Promise<unknown> = Promise.resolve();
  #count = 0;

  constructor(
    readonly config: RTCConfiguration,
    readonly name = `pc${FakePeerConnection.created.length}`,
  ) {
    FakePeerConnection.created.push(this);
  }

  addTrack(track?: FakeTrack): FakeSender {
    const sender = new FakeSender(track ?? null);
    this.senders.push(sender);
    this.#needsNegotiation = true;
    this.#maybeNegotiate();
    return sender;
  }

  getSenders(): FakeSender[] {
    return [...this.senders];
  }

  // Like the real thing, description operations run one after another, in call order.
  setLocalDescription(description?: { type: 'rollback' }): Promise<void> {
    return this.#chain(() => {
      if (description?.type === 'rollback') throw new Error('explicit rollback not expected');
      this.#count += 1;
      this.#negotiationFired = false;
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
      if (!this.#needsNegotiation || this.signalingState !== 'stable' || this.#negotiationFired) return;
      this.#negotiationFired = true;
      this.onnegotiationneeded?.({});
    }, 0);
  }
}

export const PC = FakePeerConnection as unknown as typeof RTCPeerConnection;

/** A media track: `stop()` ends it for good, as in a browser. */
export class FakeTrack {
  static count = 0;
  readonly id = `track${(FakeTrack.count += 1)}`;
  readyState: 'live' | 'ended' = 'live';
  enabled = true;
  constructor(readonly kind: 'audio' | 'video') {}
  stop(): void {
    this.readyState = 'ended';
  }
}

/** An RTCRtpSender: the track it sends, replaceable without renegotiation. */
export class FakeSender {
  constructor(public track: FakeTrack | null) {}
  replaceTrack(track: FakeTrack | null): Promise<void> {
    this.track = track;
    return Promise.resolve();
  }
}

/** A MediaStream of an audio and a video track (or the kinds given). */
export function fakeStream(kinds: Array<'audio' | 'video'> = ['audio', 'video']): MediaStream & { tracks: FakeTrack[] } {
  const tracks = kinds.map((kind) => new FakeTrack(kind));
  const stream = {
    id: 'stream',
    tracks,
    getTracks: () => [...tracks],
    // As in a browser: adding a track the stream holds does nothing.
    addTrack: (track: FakeTrack) => {
      if (!tracks.includes(track)) tracks.push(track);
    },
    removeTrack: (track: FakeTrack) => {
      const at = tracks.indexOf(track);
      if (at >= 0) tracks.splice(at, 1);
    },
  };
  return stream as unknown as MediaStream & { tracks: FakeTrack[] };
}

/** Users and their connections; signals are delivered asynchronously, in order per sender → recipient. */
export function hub() {
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

/** Both signaling and connection settled: stable, connected, with a remote description. */
export function settled(call: PeerCall): boolean {
  const pc = call.pc as unknown as FakePeerConnection;
  return pc.signalingState === 'stable' && pc.connectionState === 'connected' && pc.remoteDescription !== null;
}
