/**
 * PeerCall: one RTCPeerConnection wired to the signals exchanged with one
 * peer user: the call's states, its media and the routing of the peer's
 * signals; the offer/answer exchange ("perfect negotiation": either side may
 * start) is in call-negotiation.ts. `offer`/`answer`
 * carry `{ description }`, `candidate` `{ candidate }`, `bye` hangs up,
 * `custom` carries the call's control messages (call-control.ts: accepted,
 * declined, busy, mute and camera); `toConn` addresses the peer's connection
 * once it is known, so the peer's other tabs ignore the call; `callId`
 * (set by RoomCall) keeps a group call's signals apart from a 1:1 call's.
 */
import type { SignalDelivery, SignalKind } from '../../protocol/src/frames.js';
import { TypedEmitter } from './emitter.js';
import { NerveClientError } from './errors.js';
import { ErrorCode } from '../../protocol/src/codes.js';
import {
  finalState,
  isFinal,
  parseControl,
  stateForConnection,
  type CallControl,
  type CallEndReason,
  type CallState,
  type MediaState,
} from './call-control.js';
import { LocalMedia } from './call-media.js';
import { Negotiation, type NegotiationData } from './call-negotiation.js';
import { isPolite, pairCallId, type PeerCallEvents, type PeerCallOptions, type SignalChannel } from './call-types.js';
import type { MediaStreamType, RTCPeerConnectionConstructor, RTCPeerConnectionType } from './webrtc-types.js';

export type { CallEndReason, CallState, CallStateChange, MediaState } from './call-control.js';
export type { GetTrack, TrackKind } from './call-media.js';
export { isPolite, pairCallId, type PeerCallEvents, type PeerCallOptions, type SignalChannel } from './call-types.js';

/** Payload of the signals PeerCall sends and understands. */
interface CallSignalData extends NegotiationData {
  /** The peer connection id this signal is for; other connections of the user ignore it. */
  toConn?: string;
  /** The group call this signal belongs to (none: a 1:1 call). */
  callId?: string;
}

export class PeerCall extends TypedEmitter<PeerCallEvents> {
  /** The call's `RTCPeerConnection`. */
  readonly pc: RTCPeerConnectionType;
  /** The remote user id. */
  readonly peer: string;
  readonly #client: SignalChannel;
  readonly #forcedPolite: boolean | undefined;
  readonly #unsubscribe: () => void;
  readonly #media: LocalMedia;
  readonly #ringTimeoutMs: number;
  readonly #callId: string | undefined;
  #remoteStream: MediaStreamType | undefined;
  #remoteMedia: MediaState = { audio: true, video: true };
  /** Connection of the peer user this call talks to, learned from its first signal. */
  #peerConn: string | undefined;
  readonly #negotiation: Negotiation;
  /** The stream's tracks wait for the remote offer (the answering side), so they reuse its transceivers. */
  #tracksPending = false;
  /** Incoming and ringing: the peer's signals wait here for `accept()`. */
  readonly #held: SignalDelivery[] = [];
  readonly #incoming: boolean;
  #ringTimer: ReturnType<typeof setTimeout> | undefined;
  /** Incoming signals are applied one at a time, in arrival order. */
  #chain: Promise<void> = Promise.resolve();
  #state: CallState = 'new';
  #ended = false;
  /** The server's call this one is timed as (`room` option), and whether we joined it. */
  readonly #timing: { room: string; call: string } | undefined;
  #timed = false;

  /**
   * Refuse an incoming call without creating a PeerCall, e.g. `busy` while
   * in another call. The caller's call ends with that reason.
   */
  static reject(client: SignalChannel, offer: SignalDelivery, reason: 'declined' | 'busy' = 'declined'): Promise<void> {
    const control: CallControl = { call: reason };
    const callId = (offer.data as CallSignalData | null)?.callId;
    return client.signal(offer.from, 'custom', { ...control, toConn: offer.fromConn, ...(callId === undefined ? {} : { callId }) }).then(
      () => {},
      () => {},
    );
  }

  constructor(options: PeerCallOptions) {
    super();
    const Impl = options.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: RTCPeerConnectionConstructor }).RTCPeerConnection;
    if (typeof Impl !== 'function') throw new TypeError('no RTCPeerConnection implementation available');
    if (!options.client.user) throw new TypeError('PeerCall needs a connected client (no welcome yet)');
    this.#client = options.client;
    this.peer = options.peer;
    this.#forcedPolite = options.polite;
    this.#ringTimeoutMs = options.ringTimeoutMs ?? 45_000;
    this.#callId = options.callId;
    if (options.room !== undefined) this.#timing = { room: options.room, call: options.callId ?? pairCallId(options.client.user, options.peer) };
    const iceServers = options.iceServers ?? options.client.welcome?.iceServers ?? [];
    this.pc = new Impl({ iceServers });
    this.#media = new LocalMedia(this.pc, options.getTrack, (state) => {
      this.emit('local_media', state);
      this.#sendMedia();
    });

    this.#negotiation = new Negotiation(this.pc, {
      polite: () => this.polite,
      send: (kind, data) => this.#send(kind, data),
      peerAnswered: () => this.#accepted(),
      beforeAnswer: () => {
        if (!this.#tracksPending) return;
        this.#tracksPending = false;
        this.#media.attach();
      },
      fail: (error) => this.#fail(error),
    });
    this.pc.onconnectionstatechange = () => {
      this.emit('state', this.pc.connectionState);
      if (this.#state !== 'ringing' && !isFinal(this.#state)) this.#setState(stateForConnection(this.pc.connectionState, this.#state));
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

    this.#incoming = options.incoming !== undefined;
    if (options.incoming) {
      this.#peerConn = options.incoming.fromConn;
      this.#held.push(options.incoming);
      this.#setState('ringing');
    }
  }

  /** Our perfect-negotiation role. */
  get polite(): boolean {
    return this.#forcedPolite ?? isPolite(this.#client.user ?? '', this.peer, this.#client.connId, this.#peerConn);
  }

  /** The peer's media, once a track arrived (`track` event). */
  get remoteStream(): MediaStreamType | undefined {
    return this.#remoteStream;
  }

  /** Whether the call is over (`ended` was emitted). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Where the call stands (see `CallState`). */
  get callState(): CallState {
    return this.#state;
  }

  /** Whether this call was created for an incoming offer. */
  get incoming(): boolean {
    return this.#incoming;
  }

  /** Our microphone and camera. */
  get localMedia(): MediaState {
    return this.#media.state;
  }

  /** The peer's microphone and camera, as it last said (on until told otherwise). */
  get remoteMedia(): MediaState {
    return { ...this.#remoteMedia };
  }

  /** Call: add the local tracks; the offer follows through `negotiationneeded` and the call rings. */
  start(stream?: MediaStreamType): void {
    if (this.#ended) throw new Error('call has ended');
    if (this.#incoming && this.#state === 'ringing') throw new Error('an incoming call is answered with accept()');
    if (this.#state === 'new') this.#setState('ringing');
    this.#media.adopt(stream);
    this.#media.attach();
  }

  /**
   * Accept the incoming call this PeerCall was created for: tell the caller,
   * then apply the offer and the signals that followed it. The local tracks
   * are added after the offer, so they reuse its transceivers.
   */
  accept(stream?: MediaStreamType): Promise<void> {
    if (this.#ended) return Promise.reject(new Error('call has ended'));
    if (!this.#incoming || this.#state !== 'ringing') return Promise.reject(new Error('no incoming call ringing to accept'));
    this.#answerWith(stream);
    for (const signal of this.#held.splice(0)) this.receive(signal);
    return this.#chain;
  }

  /**
   * Answer an offer the app received before this PeerCall existed (without
   * `incoming`). Like `accept()`; the app feeds later signals with
   * `receive()`.
   */
  answer(offer: SignalDelivery, stream?: MediaStreamType): Promise<void> {
    if (this.#ended) return Promise.reject(new Error('call has ended'));
    this.#peerConn ??= offer.fromConn;
    this.#answerWith(stream);
    this.receive(offer);
    return this.#chain;
  }

  /** Refuse the incoming call (the caller's call ends `declined`); on any other call, `hangup()`. */
  decline(): void {
    if (this.#ended) return;
    if (!(this.#incoming && this.#state === 'ringing')) {
      this.hangup();
      return;
    }
    this.#control({ call: 'declined' });
    this.#end('local', 'declined');
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
   * Switch the microphone off (its tracks stop) or back on (a new track
   * from `getTrack`). The peer is told at once (`remote_media` there).
   */
  setMicrophone(on: boolean): Promise<void> {
    return this.#media.set('audio', on);
  }

  /** Switch the camera off (its tracks stop, the light goes out) or back on. The peer is told at once. */
  setCamera(on: boolean): Promise<void> {
    return this.#media.set('video', on);
  }

  /**
   * Apply a signal from the peer. Signals arriving through the client are
   * applied automatically; call this only for signals received before this
   * PeerCall existed (for example candidates that followed the offer while
   * the app was asking the user to accept, without `incoming`).
   */
  receive(signal: SignalDelivery): void {
    if (signal.from !== this.peer || this.#ended) return;
    const data = (typeof signal.data === 'object' && signal.data !== null ? signal.data : {}) as CallSignalData;
    // Another call with the same peer (a group call's, or a 1:1 call's).
    if (data.callId !== this.#callId) return;
    if (data.toConn !== undefined && data.toConn !== this.#client.connId) {
      // The caller now talks to another connection of our user: that one answered.
      if (this.#incoming && this.#state === 'ringing') this.#end('answered_elsewhere');
      return;
    }
    // From another tab of the peer.
    if (this.#peerConn !== undefined && signal.fromConn !== this.#peerConn) return;
    if (this.#incoming && this.#state === 'ringing') {
      if (signal.kind === 'bye') this.#end('remote');
      else this.#held.push(signal);
      return;
    }
    this.#peerConn ??= signal.fromConn;
    if (signal.kind === 'custom') {
      const control = parseControl(data);
      if (control) this.#onControl(control);
      return;
    }
    this.#chain = this.#chain.then(() => this.#apply(signal.kind, data)).catch((error: unknown) => this.#fail(error));
  }

  #onControl(control: CallControl): void {
    if (control.call === 'media') {
      this.#remoteMedia = { audio: control.audio, video: control.video };
      this.emit('remote_media', this.remoteMedia);
      return;
    }
    if (this.#state !== 'ringing') return;
    if (control.call === 'accepted') {
      this.#accepted();
      return;
    }
    // Declined or busy: the callee's other tabs may still ring; a bye to all of them stops that.
    this.#client.signal(this.peer, 'bye', this.#callId === undefined ? {} : { callId: this.#callId }).catch(() => {});
    this.#end(control.call);
  }

  async #apply(kind: SignalKind, data: CallSignalData): Promise<void> {
    if (this.#ended) return;
    if (kind === 'bye') {
      this.#end('remote');
      return;
    }
    if ((kind === 'offer' || kind === 'answer') && data.description) await this.#negotiation.description(data.description);
    else if (kind === 'candidate' && data.candidate) await this.#negotiation.candidate(data.candidate);
  }

  /** The answering side's common part of accept() and answer(). */
  #answerWith(stream: MediaStreamType | undefined): void {
    this.#media.adopt(stream);
    this.#tracksPending = true;
    this.#control({ call: 'accepted' });
    this.#accepted();
  }

  /** Leave ringing (or new): the peer is in the call; tell it our microphone and camera. */
  #accepted(): void {
    if (this.#state !== 'ringing' && this.#state !== 'new') return;
    this.#setState('accepted');
    this.#sendMedia();
  }

  #sendMedia(): void {
    // While an incoming call rings the caller needs nothing; accept() sends it.
    if (this.#incoming && this.#state === 'ringing') return;
    if (this.#state === 'new') return;
    this.#control({ call: 'media', ...this.#media.state });
  }

  #control(control: CallControl): void {
    this.#send('custom', control);
  }

  #setState(state: CallState, reason?: CallEndReason): void {
    const previous = this.#state;
    if (state === previous) return;
    this.#state = state;
    if (state === 'connected') this.#time('join');
    if (state === 'ringing') this.#startRinging();
    else clearTimeout(this.#ringTimer);
    this.emit('call_state', reason === undefined ? { state, previous } : { state, previous, reason });
  }

  #startRinging(): void {
    if (this.#ringTimeoutMs <= 0) return;
    this.#ringTimer = setTimeout(() => {
      if (this.#state !== 'ringing') return;
      // An unanswered caller hangs up; an unanswered callee just stops ringing (the caller's own timer ends its side).
      if (!this.#incoming) this.#send('bye', {});
      this.#end('no_answer');
    }, this.#ringTimeoutMs);
  }

  #send(kind: SignalKind, data: CallSignalData | CallControl): void {
    if (this.#ended) return;
    const payload: Record<string, unknown> = { ...data };
    if (this.#peerConn !== undefined) payload.toConn = this.#peerConn;
    if (this.#callId !== undefined) payload.callId = this.#callId;
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

  /** `reason` is what the `ended` event says; `shown` overrides the final state (a local decline shows `declined`). */
  #end(reason: CallEndReason, shown?: CallState): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#held.length = 0;
    this.#media.close();
    this.#unsubscribe();
    this.#negotiation.detach();
    this.pc.ontrack = null;
    this.pc.close();
    // closing does not fire connectionstatechange; report the final state ourselves.
    this.pc.onconnectionstatechange = null;
    this.emit('state', 'closed');
    this.#setState(shown ?? finalState(reason), reason);
    this.#time('leave');
    this.emit('ended', { reason });
  }

  /** Join the server's call when first connected, leave it at the end (only if joined). */
  #time(action: 'join' | 'leave'): void {
    if (!this.#timing || !this.#client.call || this.#timed === (action === 'join')) return;
    this.#timed = action === 'join';
    this.#client.call(this.#timing.room, this.#timing.call, action).catch((error: unknown) => {
      // Timing is for billing: a refusal is reported, the media goes on.
      if (action === 'join') this.#fail(error);
    });
  }
}
