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
  /** The track's id. */
  readonly id: string;
  /** `audio` or `video`. */
  readonly kind: string;
  /** Stop capturing (the camera light goes out). */
  stop(): void;
}

/** A media stream, as far as PeerCall's signatures go without the DOM lib. */
export interface MediaStreamShape {
  /** The stream's id. */
  readonly id: string;
  /** Its tracks. */
  getTracks(): MediaStreamTrackShape[];
  /** Add a track. */
  addTrack(track: MediaStreamTrackShape): void;
}

/** An `RTCPeerConnection`, as far as PeerCall's signatures go without the DOM lib. */
export interface RTCPeerConnectionShape {
  /** `new`, `connecting`, `connected`, `disconnected`, `failed` or `closed`. */
  readonly connectionState: string;
  /** Where the offer/answer exchange stands (`stable` between negotiations). */
  readonly signalingState: string;
  /** Close the connection and its transports. */
  close(): void;
}

/** A `track` event of an `RTCPeerConnection`. */
export interface RTCTrackEventShape {
  /** The remote track that arrived. */
  readonly track: MediaStreamTrackShape;
  /** The remote streams it belongs to. */
  readonly streams: readonly MediaStreamShape[];
}

/** `RTCIceServer`: one STUN or TURN server (the DOM's dictionary has the same fields). */
export interface IceServerInit {
  /** `stun:` or `turn:` URLs of the server. */
  urls: string | string[];
  /** TURN user name. */
  username?: string;
  /** TURN password. */
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
export type RTCPeerConnectionConstructor = Globals extends {
  /** The global constructor, where declared. */
  RTCPeerConnection: infer C;
}
  ? C
  : new (configuration?: { iceServers?: IceServerInit[] }) => RTCPeerConnectionShape;
