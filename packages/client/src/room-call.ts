/**
 * RoomCall: a group call among up to 6 people of a room, as a full mesh:
 * one PeerCall (perfect negotiation) per pair, every signal of which
 * carries the call's `callId`, so a group call and a 1:1 call with the same
 * person stay apart. No media server: each participant sends its camera
 * and microphone to every other one (n − 1 uploads), hence the cap.
 *
 * How people find each other, in `custom` signals (the server relays them
 * untouched):
 * - `{ "call": "group_invite", "callId", "room", "members": [user…] }`: the
 *   inviter asks a user in; `members` are those in the call already.
 * - A joiner offers to every member (a PeerCall with `callId`); a member
 *   answers an offer of its call from someone new, and replies
 *   `{ "call": "group_members", "callId", "members": [user…] }` with
 *   everyone it has, so the joiner also reaches those who joined meanwhile.
 * - Leaving is each pair's `bye`. A member with a full call answers a new
 *   offer `busy`.
 */
import type { SignalDelivery } from '../../protocol/src/frames.js';
import type { CallEndReason, CallState, MediaState } from './call-control.js';
import { userMediaTrack, type TrackKind } from './call-media.js';
import { TypedEmitter } from './emitter.js';
import { randomId } from './ids.js';
import { PeerCall, type PeerCallOptions, type SignalChannel } from './webrtc.js';
import type { MediaStreamTrackType, MediaStreamType } from './webrtc-types.js';

/** The most people in one mesh call, the caller included. */
export const MAX_ROOM_CALL_SIZE = 6;

/** An invitation to a group call, read from a signal with `RoomCall.invitation()`. */
export interface RoomCallInvite {
  /** The call's id: pass it to `new RoomCall({ callId })` to join. */
  callId: string;
  /** The room the call is in. */
  room: string;
  /** The inviter. */
  from: string;
  /** Who is in the call already (the inviter included). */
  members: string[];
}

/** Events of a `RoomCall`, name → payload. */
export interface RoomCallEvents {
  /** A pair call with `user` was created (they joined, or we reached them). */
  peer_joined: {
    /** The participant. */
    user: string;
    /** The pair call with them. */
    call: PeerCall;
  };
  /** The pair call with `user` ended: they left, or it failed. */
  peer_left: {
    /** The participant. */
    user: string;
    /** Why the pair call ended. */
    reason: CallEndReason;
  };
  /** The pair call with `user` changed state (ringing, connecting, connected, ...). */
  peer_state: {
    /** The participant. */
    user: string;
    /** The pair call's state now. */
    state: CallState;
  };
  /** Media from `user` arrived; `stream` holds all of their tracks. */
  peer_track: {
    /** The participant. */
    user: string;
    /** All of their media. */
    stream: MediaStreamType;
  };
  /** `user` switched their microphone or camera. */
  peer_media: {
    /** The participant. */
    user: string;
    /** Their microphone and camera. */
    media: MediaState;
  };
  /** Our microphone or camera was switched; every participant is told. */
  local_media: MediaState;
  /** `leave()` was called; every pair call is hung up. */
  ended: Record<string, never>;
  /** A signal or a pair call failed. */
  error: Error;
}

/** Options of `new RoomCall(options)`; `client` and `room` are required. */
export interface RoomCallOptions extends Pick<PeerCallOptions, 'iceServers' | 'RTCPeerConnection' | 'getTrack' | 'ringTimeoutMs'> {
  /** A connected client (a `NerveClient`). Required. */
  client: SignalChannel;
  /** The room the call is in (signals need the `signal` right in a room the peers share). Required. */
  room: string;
  /** The call's id: from the invite when joining, a new random one when starting. */
  callId?: string;
  /** The local camera and microphone, sent to every participant. */
  stream?: MediaStreamType;
  /** Cap on participants, this user included. Default and most: 6. */
  maxSize?: number;
}

type GroupControl = { call: 'group_invite'; callId: string; room: string; members: string[] } | { call: 'group_members'; callId: string; members: string[] };

function parseGroup(data: unknown): GroupControl | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const value = data as Record<string, unknown>;
  if (typeof value.callId !== 'string' || !Array.isArray(value.members)) return undefined;
  const members = value.members.filter((member): member is string => typeof member === 'string');
  if (value.call === 'group_invite' && typeof value.room === 'string') return { call: 'group_invite', callId: value.callId, room: value.room, members };
  if (value.call === 'group_members') return { call: 'group_members', callId: value.callId, members };
  return undefined;
}

export class RoomCall extends TypedEmitter<RoomCallEvents> {
  /** The call's id, carried by every signal of the call. */
  readonly callId: string;
  /** The room the call is in. */
  readonly room: string;
  readonly #client: SignalChannel;
  readonly #options: RoomCallOptions;
  readonly #maxSize: number;
  readonly #peers = new Map<string, PeerCall>();
  readonly #unsubscribe: () => void;
  readonly #stream: MediaStreamType | undefined;
  #media: MediaState = { audio: true, video: true };
  /** The track a switched-on kind now sends, handed to every pair call. */
  readonly #current = new Map<TrackKind, MediaStreamTrackType>();
  #ended = false;
  /** Whether we joined the server's call (its timing, for billing): at our first connected pair. */
  #timed = false;

  /** The group call invitation in a signal, or undefined when it is something else. */
  static invitation(signal: SignalDelivery): RoomCallInvite | undefined {
    const control = signal.kind === 'custom' ? parseGroup(signal.data) : undefined;
    if (control?.call !== 'group_invite') return undefined;
    return { callId: control.callId, room: control.room, from: signal.from, members: control.members };
  }

  /** Whether a signal belongs to a group call (its `callId`): a 1:1 call handler ignores those. */
  static isGroupSignal(signal: SignalDelivery): boolean {
    const data = signal.data as { callId?: unknown } | null;
    return typeof data === 'object' && data !== null && typeof data.callId === 'string';
  }

  constructor(options: RoomCallOptions) {
    super();
    if (!options.client.user) throw new TypeError('RoomCall needs a connected client (no welcome yet)');
    this.#client = options.client;
    this.#options = options;
    this.room = options.room;
    this.callId = options.callId ?? randomId();
    this.#maxSize = Math.min(options.maxSize ?? MAX_ROOM_CALL_SIZE, MAX_ROOM_CALL_SIZE);
    this.#stream = options.stream;
    this.#unsubscribe = this.#client.on('signal', (signal) => this.#onSignal(signal));
  }

  /** The pair calls, by user. */
  get peers(): ReadonlyMap<string, PeerCall> {
    return this.#peers;
  }

  /** Whether `leave()` was called. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Our microphone and camera. */
  get localMedia(): MediaState {
    return { ...this.#media };
  }

  /** Ask users in (they join with `join()` on their side). Those already in the call are skipped. */
  invite(users: readonly string[]): void {
    if (this.#ended) return;
    const members = this.#members();
    for (const user of users) {
      if (user === this.#client.user || this.#peers.has(user)) continue;
      this.#control(user, { call: 'group_invite', callId: this.callId, room: this.room, members });
    }
  }

  /** Join the call: connect to each member (from the invite). Further members are learned from them. */
  join(members: readonly string[]): void {
    for (const member of members) this.#reach(member);
  }

  /** Hang up every pair call. Idempotent. */
  leave(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#unsubscribe();
    for (const call of [...this.#peers.values()]) call.hangup();
    if (this.#timed) this.#client.call?.(this.room, this.callId, 'leave').catch(() => {});
    this.emit('ended', {});
  }

  /** Switch the microphone off (its track stops) or on, for every participant at once. */
  setMicrophone(on: boolean): Promise<void> {
    return this.#toggle('audio', on);
  }

  /** Switch the camera off (its track stops, the light goes out) or on, for every participant at once. */
  setCamera(on: boolean): Promise<void> {
    return this.#toggle('video', on);
  }

  async #toggle(kind: TrackKind, on: boolean): Promise<void> {
    if (this.#ended || this.#media[kind] === on) return;
    this.#media = { ...this.#media, [kind]: on };
    this.emit('local_media', this.localMedia);
    const stream = this.#stream;
    if (on) {
      // One new track, shared by every pair call (each one's getTrack hands it out).
      let track: MediaStreamTrackType;
      try {
        track = await (this.#options.getTrack ?? userMediaTrack)(kind);
      } catch (error) {
        this.#media = { ...this.#media, [kind]: false };
        this.emit('local_media', this.localMedia);
        throw error;
      }
      this.#current.set(kind, track);
      stream?.addTrack(track);
    } else {
      this.#current.delete(kind);
      for (const track of stream?.getTracks() ?? []) {
        if (track.kind !== kind) continue;
        track.stop();
        stream?.removeTrack(track);
      }
    }
    await Promise.all([...this.#peers.values()].map((call) => (kind === 'audio' ? call.setMicrophone(on) : call.setCamera(on))));
  }

  #onSignal(signal: SignalDelivery): void {
    if (this.#ended || signal.from === this.#client.user) return;
    const data = signal.data as { callId?: unknown } | null;
    if (typeof data !== 'object' || data === null || data.callId !== this.callId) return;
    if (signal.kind === 'custom') {
      const control = parseGroup(data);
      if (control?.call === 'group_members') for (const member of control.members) this.#reach(member);
      return;
    }
    // An offer of this call from someone new: they are joining. Known peers' signals go to their PeerCall.
    if (signal.kind !== 'offer' || this.#peers.has(signal.from)) return;
    if (this.#peers.size + 1 >= this.#maxSize) {
      void PeerCall.reject(this.#client, signal, 'busy');
      return;
    }
    const call = this.#pair(signal.from);
    call.answer(signal, this.#stream).catch((error: unknown) => this.#fail(error));
    this.#control(signal.from, { call: 'group_members', callId: this.callId, members: this.#members() }, signal.fromConn);
  }

  /** Offer to a member we have no pair call with. */
  #reach(user: string): void {
    if (this.#ended || user === this.#client.user || this.#peers.has(user)) return;
    if (this.#peers.size + 1 >= this.#maxSize) return;
    this.#pair(user).start(this.#stream);
  }

  #pair(user: string): PeerCall {
    const { iceServers, RTCPeerConnection, ringTimeoutMs } = this.#options;
    const call = new PeerCall({
      client: this.#client,
      peer: user,
      callId: this.callId,
      getTrack: (kind) => {
        const track = this.#current.get(kind);
        return track ? Promise.resolve(track) : Promise.reject(new Error(`no ${kind} track`));
      },
      ...(iceServers === undefined ? {} : { iceServers }),
      ...(RTCPeerConnection === undefined ? {} : { RTCPeerConnection }),
      ...(ringTimeoutMs === undefined ? {} : { ringTimeoutMs }),
    });
    this.#peers.set(user, call);
    // Every pair shares the one local stream: adding a track it holds, or removing one it lacks, does nothing.
    // Kinds switched off already: the pair starts with them off (flags only; the stream lacks them).
    if (!this.#media.audio) void call.setMicrophone(false);
    if (!this.#media.video) void call.setCamera(false);
    call.on('call_state', ({ state }) => {
      if (state === 'connected') this.#time();
      this.emit('peer_state', { user, state });
    });
    call.on('remote_media', (media) => this.emit('peer_media', { user, media }));
    call.on('track', () => {
      if (call.remoteStream) this.emit('peer_track', { user, stream: call.remoteStream });
    });
    call.on('error', (error) => this.#fail(error));
    call.on('ended', ({ reason }) => {
      if (this.#peers.get(user) === call) this.#peers.delete(user);
      this.emit('peer_left', { user, reason });
    });
    this.emit('peer_joined', { user, call });
    return call;
  }

  /** In the call from the first connected pair on: tell the server, which times the call (RoomCall uses the call's id in its room). */
  #time(): void {
    if (this.#timed || this.#ended || !this.#client.call) return;
    this.#timed = true;
    this.#client.call(this.room, this.callId, 'join').catch((error: unknown) => this.#fail(error));
  }

  #members(): string[] {
    return [this.#client.user ?? '', ...this.#peers.keys()];
  }

  #control(user: string, control: GroupControl, toConn?: string): void {
    const data = toConn === undefined ? control : { ...control, toConn };
    this.#client.signal(user, 'custom', data).catch((error: unknown) => this.#fail(error));
  }

  #fail(error: unknown): void {
    if (this.#ended) return;
    this.emit('error', error instanceof Error ? error : new Error(String(error)));
  }
}
