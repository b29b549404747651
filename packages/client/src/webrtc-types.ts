/**
 * The WebRTC types PeerCall's signatures name, so the SDK's declarations
 * need no DOM lib. Where the app declares the WebRTC globals (the DOM lib),
 * each type resolves to the real one; without them (`lib: ["ES2022"]` in
 * Node, workers, React Native) to the small structural shape here. The
 * lookup goes through `typeof globalThis`, of which a declared global `var`
 * (the DOM's `var MediaStream: {...}`) is a property.
 */

type Globals = typeof globalThis;

/** The instance type of global constructor `K`, or `Fallback` when the global is not declared. */
type GlobalInstance<K extends string, Fallback> = Globals extends { [key in K]: { prototype: infer T } } ? T : Fallback;

/** A media track, as far as PeerCall's signatures go without the DOM lib. */
export interface MediaStreamTrackShape {
  readonly id: string;
  readonly kind: string;
  stop(): void;
}

/** A media stream, as far as PeerCall's signatures go without the DOM lib. */
export interface MediaStreamShape {
  readonly id: string;
  getTracks(): MediaStreamTrackShape[];
  addTrack(track: MediaStreamTrackShape): void;
}

/** An `RTCPeerConnection`, as far as PeerCall's signatures go without the DOM lib. */
export interface RTCPeerConnectionShape {
  readonly connectionState: string;
  readonly signalingState: string;
  close(): void;
}

/** A `track` event of an `RTCPeerConnection`. */
export interface RTCTrackEventShape {
  readonly track: MediaStreamTrackShape;
  readonly streams: readonly MediaStreamShape[];
}

/** `RTCIceServer`: one STUN or TURN server (the DOM's dictionary has the same fields). */
export interface IceServerInit {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** `RTCPeerConnectionState`, the same union as the DOM's. */
export type PeerConnectionState = 'closed' | 'connected' | 'connecting' | 'disconnected' | 'failed' | 'new';

/** `MediaStreamTrack`: the DOM's where declared. */
export type MediaStreamTrackType = GlobalInstance<'MediaStreamTrack', MediaStreamTrackShape>;

/** `MediaStream`: the DOM's where declared. */
export type MediaStreamType = GlobalInstance<'MediaStream', MediaStreamShape>;

/** `RTCPeerConnection`: the DOM's where declared. */
export type RTCPeerConnectionType = GlobalInstance<'RTCPeerConnection', RTCPeerConnectionShape>;

/** `RTCTrackEvent`: the DOM's where declared. */
export type RTCTrackEventType = GlobalInstance<'RTCTrackEvent', RTCTrackEventShape>;

/** The `RTCPeerConnection` constructor: the DOM's where declared (e.g. react-native-webrtc's otherwise). */
export type RTCPeerConnectionConstructor = Globals extends { RTCPeerConnection: infer C }
  ? C
  : new (configuration?: { iceServers?: IceServerInit[] }) => RTCPeerConnectionShape;
