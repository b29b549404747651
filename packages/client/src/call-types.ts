/**
 * The contracts of PeerCall: its options, its events, what it needs from the
 * signaling connection, and the rule that picks the perfect-negotiation
 * roles. webrtc.ts re-exports them. Nothing here names a DOM type, so the
 * declarations type-check without the DOM lib.
 */
import type { AckFrame, SignalDelivery, SignalKind, WelcomeFrame } from '../../protocol/src/frames.js';
import type { CallEndReason, CallStateChange, MediaState } from './call-control.js';
import type { GetTrack } from './call-media.js';
import type { IceServerInit, PeerConnectionState, RTCPeerConnectionConstructor, RTCTrackEventType } from './webrtc-types.js';

/** Events of a `PeerCall`, name → payload. */
export interface PeerCallEvents {
  /** A remote track arrived; `remoteStream` holds all of them. */
  track: RTCTrackEventType;
  /** `RTCPeerConnection.connectionState` changed. */
  state: PeerConnectionState;
  /** The call's state changed: ringing, accepted, connecting, connected, ... (see `CallState`). */
  call_state: CallStateChange;
  /** The peer switched its microphone or camera on or off (its `media` control message). */
  remote_media: MediaState;
  /** Our microphone or camera was switched (`setMicrophone`, `setCamera`); the peer is told. */
  local_media: MediaState;
  /** The call is over; the peer connection is closed. Emitted once, after the final `call_state`. */
  ended: {
    /** Why the call ended. */
    reason: CallEndReason;
  };
  /** A negotiation step or a signal failed (the call may recover on its own). */
  error: Error;
}

/**
 * What PeerCall needs from the signaling connection. `NerveClient` fits;
 * tests pass a fake.
 */
export interface SignalChannel {
  /** The authenticated user id, once connected. */
  readonly user: string | undefined;
  /** The current connection id, once connected. */
  readonly connId: string | undefined;
  /** The latest welcome (its `iceServers` are the default ICE servers). */
  readonly welcome: WelcomeFrame | undefined;
  /** Listen to the signals addressed to this user; returns the function that stops listening. */
  on(name: 'signal', listener: (signal: SignalDelivery) => void): () => void;
  /** Send a signal to every connection of user `to`. */
  signal(to: string, kind: SignalKind, data: unknown): Promise<AckFrame>;
  /** Tell the server we joined or left a call of a room, so it times the call (`NerveClient.call`). Without it, calls are not timed. */
  call?(room: string, call: string, action: 'join' | 'leave'): Promise<unknown>;
}

/** Options of `new PeerCall(options)`; `client` and `peer` are required. */
export interface PeerCallOptions {
  /** A connected client (a `NerveClient`). Required. */
  client: SignalChannel;
  /** The remote user id. Required. */
  peer: string;
  /**
   * The `offer` signal of an incoming call. The call starts `ringing` and
   * holds the peer's signals until `accept()` (or `decline()`). Default none:
   * an outgoing call, which rings from `start()`.
   */
  incoming?: SignalDelivery;
  /** How long a call may ring, ms; then it ends with `no_answer`. 0: forever. Default 45000. */
  ringTimeoutMs?: number;
  /** Gets a new track when the microphone or camera is switched back on. Default `getUserMedia`. */
  getTrack?: GetTrack;
  /** ICE servers. Default: the `iceServers` of the client's latest welcome. */
  iceServers?: IceServerInit[];
  /** Force the perfect-negotiation role. Default: `isPolite(client.user, peer)`. */
  polite?: boolean;
  /** RTCPeerConnection implementation. Default `globalThis.RTCPeerConnection`. */
  RTCPeerConnection?: RTCPeerConnectionConstructor;
  /**
   * Sent as `callId` with every signal; only signals with the same `callId`
   * are applied. RoomCall sets its call's id. Default none: signals without
   * a `callId` only.
   */
  callId?: string;
  /**
   * A room both users are in: the call is then timed by the server for
   * billing (`call.started` / `call.ended`, docs/events.md). PeerCall joins
   * the server's call when it first reaches `connected` and leaves it when
   * it ends. The call id is `callId`, or else `pairCallId(user, peer)`, the
   * same on both sides. Default none: not timed.
   */
  room?: string;
}

/**
 * The id of a 1:1 call in the server's timing: derived from the two user
 * ids, so both sides name the same call without agreeing first (room id
 * syntax; two FNV-1a hashes, so pairs of one room practically never clash).
 */
export function pairCallId(userA: string, userB: string): string {
  const [x, y] = userA < userB ? [userA, userB] : [userB, userA];
  return `p2p-${fnv1a(`${x}\n${y}`)}${fnv1a(`${y}\n${x}`)}`;
}

function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
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
