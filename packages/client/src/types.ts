/** The SDK's public types: states, options and the event map of `NerveClient`. */
import type {
  JoinedFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  MessageFrame,
  RefreshedFrame,
  RoomEndedFrame,
  SignalDelivery,
  StreamPosition,
  WelcomeFrame,
} from '../../protocol/src/frames.js';
import type { NerveClientError } from './errors.js';
import type { WebSocketConstructor } from './socket.js';

/** Connection states. `setState` is the only writer and emits every change as `state`. */
export const ClientState = {
  /** `connect()` was called and no connection has been established yet. */
  Connecting: 'connecting',
  /** Authenticated (a `welcome` arrived) and the socket is open. */
  Connected: 'connected',
  /** A connection was lost with a non-terminal close code; waiting for the backoff or retrying. */
  Reconnecting: 'reconnecting',
  /** Not connected and not trying: before `connect()`, after `close()`, or after a terminal close code. */
  Closed: 'closed',
} as const;
export type ClientState = (typeof ClientState)[keyof typeof ClientState];

export interface ReconnectOptions {
  /** Smallest reconnect delay and base of the exponential window, ms. Default 250. */
  minDelayMs?: number;
  /** Largest reconnect delay, ms. Default 10000. */
  maxDelayMs?: number;
  /** Randomness in [0, 1) for the jitter. Default `Math.random`. */
  random?: () => number;
}

export interface NerveClientOptions {
  /**
   * Where to connect. Required. One WebSocket URL (e.g. a load balancer,
   * `wss://nerve.example.com/ws`); or a list of node URLs, tried in turn:
   * the first attempt uses the first URL and every later attempt (a
   * reconnect, or a retry after a failed attempt) moves to the next one, so
   * a client whose node died resumes on another; or a function called before
   * every attempt that returns the URL to use.
   */
  url: string | readonly string[] | (() => string);
  /** User id to claim; accepted only by a node running the dev authenticator. Default none. */
  user?: string;
  /** A fixed credential (e.g. a JWT) sent in `connect`. Default none. */
  token?: string;
  /**
   * Called before every connection attempt for a fresh credential; wins
   * over `token`. Also called shortly before the connection's token expires
   * (`welcome.expiresAt`), and the new token is sent with `refresh` so the
   * connection survives the expiry (else the server closes it with 4010 and
   * the client reconnects with a fresh token). Default none.
   */
  getToken?: () => Promise<string>;
  /**
   * How long before the token's expiry to refresh it, ms. Default: a fifth
   * of the remaining lifetime, between 1 s and 60 s.
   */
  refreshLeadMs?: number;
  /** WebSocket implementation. Default `globalThis.WebSocket`; Node callers pass `ws`'s `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** How long a request (and the connect handshake) may wait for its answer, ms. Default 10000. */
  requestTimeoutMs?: number;
  /** Reconnect backoff, or `false` to never reconnect on its own. Default `{ minDelayMs: 250, maxDelayMs: 10000 }`. */
  reconnect?: ReconnectOptions | false;
}

export interface JoinOptions {
  /** Resume from this position: the answer carries the missed messages and `recovered`. Default: the position this client last saw in the room, if any. */
  since?: StreamPosition;
  /** Recent chat messages to return when not resuming. Default: the node's `historyOnJoin`. */
  history?: number;
}

export interface ChatPublishOptions {
  class?: 'chat';
  /** Client message id; a retry with the same id is stored once. Default: a random id. */
  cmid?: string;
}

export interface EphemeralPublishOptions {
  class: 'ephemeral';
  /** Coalescing key such as `cursor` or `typing`; under pressure only the latest per key is kept. */
  key?: string;
}

export interface StateChange {
  from: ClientState;
  to: ClientState;
}

export interface DisconnectInfo {
  /** WebSocket close code (1006 when the socket failed without a close frame). */
  code: number;
  reason: string;
  /** Whether the client is going to reconnect on its own. */
  willReconnect: boolean;
}

export interface RecoveryFailed {
  room: string;
  /** The rejoin's answer: `history` holds recent messages to resync from, `position` the new position. */
  joined: JoinedFrame;
}

/** Events of `NerveClient`, name → payload. */
export interface NerveClientEvents {
  /** Every state change, old → new. */
  state: StateChange;
  /** Every successful handshake (the first one and each reconnect). */
  welcome: WelcomeFrame;
  /** The socket closed; `willReconnect` says what happens next. */
  disconnected: DisconnectInfo;
  /** A chat or ephemeral message in a joined room (chat: also the missed ones replayed after a resume). */
  message: MessageFrame;
  /** A direct signal addressed to this user. */
  signal: SignalDelivery;
  member_joined: MemberJoinedFrame;
  member_left: MemberLeftFrame;
  /** Failures no request promise can carry: unmatched error frames, failed rejoins, token failures. */
  error: NerveClientError;
  /** A room was joined again after a reconnect. */
  rejoined: JoinedFrame;
  /**
   * A rejoin could not return exactly the missed messages (`recovered: false`):
   * resync the room from `joined.history`. Also after a gap fill (a chat offset
   * jumped, the epoch changed, or the server sent `resync`) answered so.
   */
  recovery_failed: RecoveryFailed;
  /** The server API ended a room this client was in; it is not rejoined. */
  room_ended: RoomEndedFrame;
  /** The connection's token was replaced before it expired (`getToken` + `refresh`). */
  refreshed: RefreshedFrame;
}

/** How the parts of the client emit on the `NerveClient` they belong to. */
export type Emit = <K extends keyof NerveClientEvents>(name: K, value: NerveClientEvents[K]) => void;
