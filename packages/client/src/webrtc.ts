/**
 * PeerCall: one RTCPeerConnection wired to the signals exchanged with one
 * peer user, with the "perfect negotiation" pattern
 * (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example): either
 * side may start; on an offer collision the impolite side ignores the
 * incoming offer and the polite side rolls its own back. `offer`/`answer`
 * carry `{ description }`, `candidate` `{ candidate }`, `bye` hangs up;
 * `toConn` addresses the peer's connection once it is known, so the peer's
 * other tabs ignore the call.
 */
import type { AckFrame, SignalDelivery, SignalKind, WelcomeFrame } from '../../protocol/src/frames.js';
import { TypedEmitter } from './emitter.js';
import { NerveClientError } from './errors.js';
import { ErrorCode } from '../../protocol/src/codes.js';
import type {
  IceServerInit,
  MediaStreamType,
  PeerConnectionState,
  RTCPeerConnectionConstructor,
  RTCPeerConnectionType,
  RTCTrackEventType,
} from './webrtc-types.js';

export type CallEndReason =
  /** `hangup()` or `close()` was called here. */
  | 'local'
  /** The peer sent `bye`. */
  | 'remote'
  /** The peer was not connected anywhere when we signalled. */
  | 'peer_offline'
  /** The peer connection failed and could not be restarted. */
  | 'failed';

export interface PeerCallEvents {
  /** A remote track arrived; `remoteStream` holds all of them. */
  track: RTCTrackEventType;
  /** `RTCPeerConnection.connectionState` changed. */
  state: PeerConnectionState;
  /** The call is over; the peer connection is closed. Emitted once. */
  ended: { reason: CallEndReason };
  /** A negotiation step or a signal failed (the call may recover on its own). */
  error: Error;
}

/**
 * What PeerCall needs from the signaling connection. `NerveClient` fits;
 * tests pass a fake.
 */
export interface SignalChannel {
  readonly user: string | undefined;
  readonly connId: string | undefined;
  readonly welcome: WelcomeFrame | undefined;
  on(name: 'signal', listener: (signal: SignalDelivery) => void): () => void;
  signal(to: string, kind: SignalKind, data: unknown): Promise<AckFrame>;
}

export interface PeerCallOptions {
  /** A connected client (a `NerveClient`). Required. */
  client: SignalChannel;
  /** The remote user id. Required. */
  peer: string;
  /** ICE servers. Default: the `iceServers` of the client's latest welcome. */
  iceServers?: IceServerInit[];
  /** Force the perfect-negotiation role. Default: `isPolite(client.user, peer)`. */
  polite?: boolean;
  /** RTCPeerConnection implementation. Default `globalThis.RTCPeerConnection`. */
  RTCPeerConnection?: RTCPeerConnectionConstructor;
}

/** Payload of the signals PeerCall sends and understands. */
interface CallSignalData {
  description?: RTCSessionDescriptionInit;
  candidate?: RTCIceCandidateInit | null;
  /** The peer connection id this signal is for; other connections of the user ignore it. */
  toConn?: string;
}

/**
 * The deterministic role choice: the side whose user id sorts first is
 * polite. Two tabs of one user compare connection ids instead.
 */
export function isPolite(localUser: string, peerUser: string, localConn?: string, peerConn?: string): boolean {
  if (localUser !== peerUser) return localUser < peerUser;
  if (localConn !== undefined && peerConn !== undefined) return localConn < peerConn;
  return true;
}

export class PeerCall extends TypedEmitter<PeerCallEvents> {
  readonly pc: RTCPeerConnectionType;
  readonly peer: string;
  readonly #client: SignalChannel;
  readonly #forcedPolite: boolean | undefined;
  readonly #unsubscribe: () => void;
  #remoteStream: MediaStreamType | undefined;
  /** Connection of the peer user this call talks to, learned from its first signal. */
  #peerConn: string | undefined;
  #makingOffer = false;
  #ignoreOffer = false;
  /** Tracks to add once the remote offer is applied (the answering side), so they reuse its transceivers. */
  #pendingStream: MediaStreamType | undefined;
  /** Incoming signals are applied one at a time, in arrival order. */
  #chain: Promise<void> = Promise.resolve();
  #ended = false;

  constructor(options: PeerCallOptions) {
    super();
    const Impl = options.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: RTCPeerConnectionConstructor }).RTCPeerConnection;
    if (typeof Impl !== 'function') throw new TypeError('no RTCPeerConnection implementation available');
    if (!options.client.user) throw new TypeError('PeerCall needs a connected client (no welcome yet)');
    this.#client = options.client;
    this.peer = options.peer;
    this.#forcedPolite = options.polite;
    const iceServers = options.iceServers ?? options.client.welcome?.iceServers ?? [];
    this.pc = new Impl({ iceServers });

    this.pc.onnegotiationneeded = async () => {
      try {
        this.#makingOffer = true;
        // Without arguments, setLocalDescription creates the right description for the current state.
        await this.pc.setLocalDescription();
        const description = this.pc.localDescription;
        if (description) this.#send(description.type === 'answer' ? 'answer' : 'offer', { description: plain(description) });
      } catch (error) {
        this.#fail(error);
      } finally {
        this.#makingOffer = false;
      }
    };
    this.pc.onicecandidate = ({ candidate }) => {
      // A null candidate marks the end of gathering; peers do not need it.
      if (candidate) this.#send('candidate', { candidate: candidate.toJSON() });
    };
    this.pc.oniceconnectionstatechange = () => {
      // A restart renegotiates fresh candidates (for example after a network change).
      if (this.pc.iceConnectionState === 'failed') this.pc.restartIce();
    };
    this.pc.onconnectionstatechange = () => {
      this.emit('state', this.pc.connectionState);
    };
    this.pc.ontrack = (event) => {
      const stream = event.streams[0];
      if (stream) {
        this.#remoteStream = stream;
      } else {
        this.#remoteStream ??= new MediaStream();
        this.#remoteStream.addTrack(event.track);
      }
      this.emit('track', event);
    };
    this.#unsubscribe = this.#client.on('signal', (signal) => {
      if (signal.from === this.peer) this.receive(signal);
    });
  }

  /** Our perfect-negotiation role. */
  get polite(): boolean {
    return this.#forcedPolite ?? isPolite(this.#client.user ?? '', this.peer, this.#client.connId, this.#peerConn);
  }

  get remoteStream(): MediaStreamType | undefined {
    return this.#remoteStream;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Call: add the local tracks; the offer follows through `negotiationneeded`. */
  start(stream?: MediaStreamType): void {
    if (this.#ended) throw new Error('call has ended');
    if (stream) for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
  }

  /**
   * Answer an incoming call whose first signal (an `offer`) the app received
   * before this PeerCall existed. The local tracks are added after the remote
   * offer is applied, so they reuse its transceivers and no second round of
   * negotiation is needed.
   */
  answer(offer: SignalDelivery, stream?: MediaStreamType): Promise<void> {
    if (this.#ended) return Promise.reject(new Error('call has ended'));
    this.#pendingStream = stream;
    this.receive(offer);
    return this.#chain;
  }

  /** Hang up: tell the peer (`bye`), then close. Idempotent. */
  hangup(): void {
    if (this.#ended) return;
    this.#send('bye', {});
    this.#end('local');
  }

  /** Close without telling the peer (e.g. the peer already left). Idempotent. */
  close(): void {
    this.#end('local');
  }

  /**
   * Apply a signal from the peer. Signals arriving through the client are
   * applied automatically; call this only for signals received before this
   * PeerCall existed (for example candidates that followed the offer while
   * the app was asking the user to accept).
   */
  receive(signal: SignalDelivery): void {
    if (signal.from !== this.peer || this.#ended) return;
    const data = (typeof signal.data === 'object' && signal.data !== null ? signal.data : {}) as CallSignalData;
    // Meant for another connection of our user (another tab), or from another tab of the peer.
    if (data.toConn !== undefined && data.toConn !== this.#client.connId) return;
    if (this.#peerConn !== undefined && signal.fromConn !== this.#peerConn) return;
    this.#peerConn ??= signal.fromConn;
    this.#chain = this.#chain.then(() => this.#apply(signal.kind, data)).catch((error: unknown) => this.#fail(error));
  }

  async #apply(kind: SignalKind, data: CallSignalData): Promise<void> {
    if (this.#ended) return;
    if (kind === 'bye') {
      this.#end('remote');
      return;
    }
    if ((kind === 'offer' || kind === 'answer') && data.description) {
      const description = data.description;
      const offerCollision = description.type === 'offer' && (this.#makingOffer || this.pc.signalingState !== 'stable');
      this.#ignoreOffer = !this.polite && offerCollision;
      if (this.#ignoreOffer) return;
      // On a collision the polite side's setRemoteDescription rolls its own offer back implicitly.
      await this.pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        this.#addPendingTracks();
        await this.pc.setLocalDescription();
        const local = this.pc.localDescription;
        if (local) this.#send('answer', { description: plain(local) });
      }
      return;
    }
    if (kind === 'candidate' && data.candidate) {
      try {
        await this.pc.addIceCandidate(data.candidate);
      } catch (error) {
        // Candidates of an offer we ignored cannot apply; anything else is a real failure.
        if (!this.#ignoreOffer) throw error;
      }
    }
  }

  #addPendingTracks(): void {
    const stream = this.#pendingStream;
    this.#pendingStream = undefined;
    if (stream) for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
  }

  #send(kind: SignalKind, data: CallSignalData): void {
    if (this.#ended) return;
    const payload: CallSignalData = this.#peerConn === undefined ? data : { ...data, toConn: this.#peerConn };
    this.#client.signal(this.peer, kind, payload).catch((error: unknown) => {
      if (error instanceof NerveClientError && error.code === ErrorCode.PeerOffline) {
        this.#end('peer_offline');
        return;
      }
      if (kind !== 'bye') this.#fail(error);
    });
  }

  #fail(error: unknown): void {
    if (this.#ended) return;
    this.emit('error', error instanceof Error ? error : new Error(String(error)));
  }

  #end(reason: CallEndReason): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#unsubscribe();
    this.pc.onnegotiationneeded = null;
    this.pc.onicecandidate = null;
    this.pc.oniceconnectionstatechange = null;
    this.pc.ontrack = null;
    this.pc.close();
    // closing does not fire connectionstatechange; report the final state ourselves.
    this.pc.onconnectionstatechange = null;
    this.emit('state', 'closed');
    this.emit('ended', { reason });
  }
}

function plain(description: RTCSessionDescription): RTCSessionDescriptionInit {
  return { type: description.type, sdp: description.sdp };
}
