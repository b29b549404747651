/**
 * The calls of one client as a store: one call at a time, a 1:1 `PeerCall`
 * or a group `RoomCall`, with what a call screen shows (state, who is in,
 * their streams and microphone and camera, ours) and the actions on it.
 * While some component holds it (a `Lease`), it answers incoming calls: an
 * offer rings (`incoming`), a group invitation waits (`invite`), and either
 * is refused `busy` during another call, as the demo page does.
 */
import {
  PeerCall,
  RoomCall,
  type CallEndReason,
  type CallState,
  type MediaState,
  type MediaStreamType,
  type PeerCallOptions,
  type RoomCallInvite,
  type SignalChannel,
  type SignalDelivery,
} from '@nerve-rt/client';
import { Lease, Store } from './store.js';

/**
 * Options of the calls `useCall` makes: PeerCall's (with `room`, a room both
 * users are in, 1:1 calls both ways are timed by the server for billing),
 * and where the camera and microphone come from.
 */
export interface CallOptions extends Pick<PeerCallOptions, 'iceServers' | 'RTCPeerConnection' | 'getTrack' | 'ringTimeoutMs' | 'room'> {
  /** The local camera and microphone, asked for when a call starts or is accepted. Default `getUserMedia({ audio: true, video: true })`. */
  getStream?: () => Promise<MediaStreamType>;
}

/** One other person in the call. */
export interface CallParticipant {
  /** Their user id. */
  user: string;
  /** The call with them (a group call has one per person). */
  state: CallState;
  /** Their media, once a track arrived. */
  stream: MediaStreamType | undefined;
  /** Their microphone and camera, as they last said. */
  media: MediaState;
}

/** How a call ended. */
export interface CallEnd {
  /** The other person of a 1:1 call (none for a group call). */
  peer: string | undefined;
  /** Why it ended (`local` after `hangup()`, `remote`, `declined`, `busy`, `no_answer`, ...). */
  reason: CallEndReason;
}

/** What `useCall` shows. */
export interface CallSnapshot {
  /** `none`, a 1:1 call (`peer`) or a group call (`group`). */
  kind: 'none' | 'peer' | 'group';
  /**
   * `idle` without a call. 1:1: the PeerCall's state (`ringing`, `accepted`,
   * `connecting`, `connected`, ...). Group: `ringing` until someone is in,
   * then `connected` once media flows with anyone, else `connecting`.
   */
  state: CallState | 'idle';
  /** A 1:1 call rings here: `accept()` or `decline()`. */
  incoming: boolean;
  /** The other person of a 1:1 call. */
  peer: string | undefined;
  /** The group call's room. */
  room: string | undefined;
  /** A group call invitation waiting for `accept()` or `decline()`. */
  invite: RoomCallInvite | undefined;
  /** The other people in the call. */
  participants: readonly CallParticipant[];
  /** Our camera and microphone, while in a call. */
  localStream: MediaStreamType | undefined;
  /** Our microphone and camera switches. */
  localMedia: MediaState;
  /** How the last call ended (until the next one starts). */
  ended: CallEnd | undefined;
  /** The last failure (getting the camera, a signal, a negotiation step). */
  error: Error | undefined;
}

const NO_CALL: CallSnapshot = {
  kind: 'none',
  state: 'idle',
  incoming: false,
  peer: undefined,
  room: undefined,
  invite: undefined,
  participants: [],
  localStream: undefined,
  localMedia: { audio: true, video: true },
  ended: undefined,
  error: undefined,
};

export class CallStore extends Store<CallSnapshot> {
  readonly #client: SignalChannel;
  readonly #lease = new Lease(
    () => this.#start(),
    () => this.#stop(),
  );
  #options: CallOptions = {};
  #offSignal: (() => void) | undefined;
  #call: PeerCall | undefined;
  #group: RoomCall | undefined;
  #invite: RoomCallInvite | undefined;
  #stream: MediaStreamType | undefined;
  #ended: CallEnd | undefined;
  #error: Error | undefined;

  constructor(client: SignalChannel) {
    super(NO_CALL);
    this.#client = client;
  }

  /** Hold the store (answer incoming calls while held); the options count when this acquire starts it. */
  acquire(options: CallOptions = {}): () => void {
    if (!this.#lease.active) this.#options = options;
    return this.#lease.acquire();
  }

  /** Use `options` for the next call (a call in progress keeps those it started with): `useCall`'s latest render. */
  configure(options: CallOptions): void {
    if (this.#lease.active) this.#options = options;
  }

  /** Call `peer` 1:1 with the camera and microphone. Does nothing during another call. */
  readonly call = async (peer: string): Promise<void> => {
    if (this.#busy()) return;
    try {
      const stream = await this.#localStream();
      if (this.#busy()) return;
      this.#peerCall(peer).start(stream);
    } catch (error) {
      this.#fail(error);
      this.hangup();
    }
  };

  /** Start a group call in `room` and invite `users` (up to 5 others). Does nothing during another call. */
  readonly startGroup = async (room: string, users: readonly string[]): Promise<void> => {
    if (this.#busy()) return;
    try {
      const stream = await this.#localStream();
      if (this.#busy()) return;
      this.#roomCall(room, stream).invite(users);
    } catch (error) {
      this.#fail(error);
      this.hangup();
    }
  };

  /** Answer the 1:1 call that rings here, or join the group call of the pending invitation. */
  readonly accept = async (): Promise<void> => {
    const invite = this.#invite;
    const call = this.#call;
    try {
      if (invite) {
        this.#invite = undefined;
        const stream = await this.#localStream();
        this.#roomCall(invite.room, stream, invite.callId).join(invite.members);
        return;
      }
      if (!call || !call.incoming || call.callState !== 'ringing') return;
      const stream = await this.#localStream();
      if (!call.ended) await call.accept(stream);
    } catch (error) {
      this.#fail(error);
      this.hangup();
    }
  };

  /** Refuse the ringing call (the caller sees `declined`) or forget the invitation. */
  readonly decline = (): void => {
    if (this.#invite) {
      this.#invite = undefined;
      this.#refresh();
      return;
    }
    if (this.#call?.incoming && this.#call.callState === 'ringing') this.#call.decline();
  };

  /** Hang up (or cancel, or decline) whatever call there is, and release the camera and microphone. */
  readonly hangup = (): void => {
    this.#group?.leave();
    const call = this.#call;
    if (call && !call.ended) {
      if (call.incoming && call.callState === 'ringing') call.decline();
      else call.hangup();
    }
    this.#group = undefined;
    this.#call = undefined;
    this.#stopStream();
    this.#refresh();
  };

  /** Switch our microphone off or on; the others are told. */
  readonly setMicrophone = (on: boolean): Promise<void> => this.#toggle((target) => target.setMicrophone(on));

  /** Switch our camera off (its light goes out) or on; the others are told. */
  readonly setCamera = (on: boolean): Promise<void> => this.#toggle((target) => target.setCamera(on));

  #toggle(change: (target: PeerCall | RoomCall) => Promise<void>): Promise<void> {
    const target = this.#group ?? this.#call;
    if (!target) return Promise.resolve();
    return change(target).catch((error: unknown) => this.#fail(error));
  }

  #start(): void {
    this.#offSignal = this.#client.on('signal', (signal) => this.#onSignal(signal));
  }

  #stop(): void {
    this.#offSignal?.();
    this.#offSignal = undefined;
    this.#invite = undefined;
    this.hangup();
  }

  #busy(): boolean {
    return (this.#call !== undefined && !this.#call.ended) || (this.#group !== undefined && !this.#group.ended) || this.#invite !== undefined;
  }

  /** Every signal of the client: new calls ring here; a call's own signals are its PeerCall's or RoomCall's business. */
  #onSignal(signal: SignalDelivery): void {
    if (RoomCall.isGroupSignal(signal)) {
      const invite = RoomCall.invitation(signal);
      if (invite && !this.#busy()) {
        this.#invite = invite;
        this.#ended = undefined;
        this.#refresh();
      }
      return;
    }
    if (signal.kind !== 'offer' || (this.#call && !this.#call.ended && this.#call.peer === signal.from)) return;
    if (this.#busy()) {
      void PeerCall.reject(this.#client, signal, 'busy');
      return;
    }
    this.#peerCall(signal.from, signal);
  }

  #peerCall(peer: string, incoming?: SignalDelivery): PeerCall {
    const call = new PeerCall({ ...this.#callOptions(), client: this.#client, peer, ...(incoming === undefined ? {} : { incoming }) });
    this.#call = call;
    this.#ended = undefined;
    this.#error = undefined;
    const refresh = (): void => {
      if (this.#call === call) this.#refresh();
    };
    call.on('call_state', refresh);
    call.on('track', refresh);
    call.on('local_media', refresh);
    call.on('remote_media', refresh);
    call.on('error', (error) => this.#fail(error));
    call.on('ended', ({ reason }) => {
      if (this.#call !== call) return;
      this.#call = undefined;
      this.#ended = { peer, reason };
      this.#stopStream();
      this.#refresh();
    });
    this.#refresh();
    return call;
  }

  #roomCall(room: string, stream: MediaStreamType, callId?: string): RoomCall {
    const group = new RoomCall({ ...this.#callOptions(), client: this.#client, room, stream, ...(callId === undefined ? {} : { callId }) });
    this.#group = group;
    this.#ended = undefined;
    this.#error = undefined;
    const refresh = (): void => {
      if (this.#group === group) this.#refresh();
    };
    for (const name of ['peer_joined', 'peer_left', 'peer_state', 'peer_track', 'peer_media', 'local_media'] as const) group.on(name, refresh);
    group.on('error', (error) => this.#fail(error));
    group.on('ended', () => {
      if (this.#group !== group) return;
      this.#group = undefined;
      this.#ended = { peer: undefined, reason: 'local' };
      this.#stopStream();
      this.#refresh();
    });
    this.#refresh();
    return group;
  }

  #callOptions(): Omit<CallOptions, 'getStream'> {
    const { getStream: _getStream, ...options } = this.#options;
    return options;
  }

  async #localStream(): Promise<MediaStreamType> {
    if (!this.#stream) {
      const getStream = this.#options.getStream ?? userMedia;
      this.#stream = await getStream();
    }
    return this.#stream;
  }

  #stopStream(): void {
    for (const track of this.#stream?.getTracks() ?? []) track.stop();
    this.#stream = undefined;
  }

  #fail(error: unknown): void {
    this.#error = error instanceof Error ? error : new Error(String(error));
    this.#refresh();
  }

  /** The snapshot, made again from the live call objects. */
  #refresh(): void {
    const base = { ...NO_CALL, invite: this.#invite, ended: this.#ended, error: this.#error, localStream: this.#stream };
    const group = this.#group;
    const call = this.#call;
    if (group) {
      const participants = [...group.peers.values()].map(participant);
      const state = participants.some((p) => p.state === 'connected') ? 'connected' : participants.length > 0 ? 'connecting' : 'ringing';
      this.set({ ...base, kind: 'group', state, room: group.room, participants, localMedia: group.localMedia });
    } else if (call) {
      const incoming = call.incoming && call.callState === 'ringing';
      this.set({ ...base, kind: 'peer', state: call.callState, incoming, peer: call.peer, participants: [participant(call)], localMedia: call.localMedia });
    } else {
      this.set(base);
    }
  }
}

function participant(call: PeerCall): CallParticipant {
  return { user: call.peer, state: call.callState, stream: call.remoteStream, media: call.remoteMedia };
}

/** The default `getStream`: the browser's camera and microphone. */
async function userMedia(): Promise<MediaStreamType> {
  const devices = (globalThis as { navigator?: { mediaDevices?: MediaDevices } }).navigator?.mediaDevices;
  if (!devices) throw new Error('no navigator.mediaDevices for the camera and microphone; pass getStream');
  return devices.getUserMedia({ audio: true, video: true });
}
