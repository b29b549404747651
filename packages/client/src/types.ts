/** The SDK's public types: states, options and the event maps of `NerveClient` and `Room`. */
import type {
  ChatMessage,
  EphemeralMessage,
  JoinedFrame,
  MemberCountFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  MemberUpdatedFrame,
  PresenceState,
  MessageFrame,
  RefreshedFrame,
  RoomEndedFrame,
  SignalDelivery,
  StreamPosition,
  WelcomeFrame,
} from '../../protocol/src/frames.js';
import type { ReadPushFrame } from '../../protocol/src/receipts.js';
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
/** A state of {@link ClientState}; `client.state` and the `state` event carry it. */
export type ClientState = (typeof ClientState)[keyof typeof ClientState];

/** How the client reconnects after losing a connection (full-jitter exponential backoff). */
export interface ReconnectOptions {
  /** Smallest reconnect delay and base of the exponential window, ms. Default 250. */
  minDelayMs?: number;
  /** Largest reconnect delay, ms. Default 10000. */
  maxDelayMs?: number;
  /** Randomness in [0, 1) for the jitter. Default `Math.random`. */
  random?: () => number;
}

/** Options of `new NerveClient(options)`; only `url` is required. */
export interface NerveClientOptions {
  /**
   * Where to connect. Required. One WebSocket URL (e.g. a load balancer,
   * `wss://nerve.example.com/ws`); or a list of node URLs:
   * the first attempt uses the first URL, every later one (a reconnect, or
   * a retry after a failed attempt) a URL that has not failed in the last
   * 30 s, picked at random, so the clients of a lost node spread over the
   * others. When every URL failed recently, a node that accepted the
   * connection goes before one that did not (a dead one). Or a function
   * called before every attempt that returns the URL to use.
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
  /** How long a request (and one connection attempt's handshake) may wait for its answer, ms. Default 10000. */
  requestTimeoutMs?: number;
  /**
   * How long `connect()` waits for a `welcome`, across the attempts it makes
   * (a refused or silent server is retried with backoff meanwhile), ms; or
   * `false` to wait for ever. When it passes before the first connection,
   * `connect()` rejects with `connect_timeout`, queued requests reject with
   * it, and the client stops: state `connecting` → `closed`, the change
   * carrying the error. While reconnecting, a `connect()` call rejects after
   * it too, but the client keeps reconnecting (its rooms are resumed once it
   * gets through). Default 10000.
   */
  connectTimeoutMs?: number | false;
  /** Reconnect backoff, or `false` to never reconnect on its own. Default `{ minDelayMs: 250, maxDelayMs: 10000 }`. */
  reconnect?: ReconnectOptions | false;
}

/** Options of `join()`. */
export interface JoinOptions {
  /** Resume from this position: the answer carries the missed messages and `recovered`. Default: the position this client last saw in the room, if any. */
  since?: StreamPosition;
  /** Recent chat messages to return when not resuming. Default: the node's `historyOnJoin`. */
  history?: number;
  /**
   * A join token for this room (a JWT with a `room` claim, minted by your
   * backend or by `POST /api/tokens/join`), sent as `join.token`: it grants
   * rights in this room that the connection's token may lack. It is sent
   * again when the room is rejoined on a new connection after a reconnect;
   * once it has expired that rejoin is refused with `forbidden` (an `error`
   * event with `room`, and the room is dropped), so give `getToken` for a
   * room that may outlive its token. Default none.
   */
  token?: string;
  /**
   * Called for a fresh join token before this join and before every rejoin
   * on a new connection; wins over `token`. A rejection (or an empty token)
   * rejects the join with `token_failed`; during a rejoin it is an `error`
   * event and the rejoin is retried with backoff. Default none.
   */
  getToken?: (room: string) => Promise<string>;
  /**
   * Your presence state in this room (a JSON object), sent with this join
   * and every rejoin; `setPresence` replaces it. Default none.
   */
  presence?: PresenceState;
}

/** Options of a chat `publish()` (the default class). */
export interface ChatPublishOptions {
  /** `chat`: stored, with an offset, acknowledged. The default. */
  class?: 'chat';
  /** Client message id; a retry with the same id is stored once. Default: a random id. */
  cmid?: string;
}

/** Options of an ephemeral `publish()`: not stored, at most once, no ack. */
export interface EphemeralPublishOptions {
  /** `ephemeral`: typing indicators, cursors, reactions in flight. */
  class: 'ephemeral';
  /** Coalescing key such as `cursor` or `typing`; under pressure only the latest per key is kept. */
  key?: string;
}

/** Options of `history()`: one page of a joined room's older chat. */
export interface HistoryOptions {
  /**
   * Only messages with an offset below this one (an integer ≥ 1). To page
   * back, pass the offset of the oldest message you hold: the first of
   * `joined.history`, then the first of each page. Default: the newest
   * messages.
   */
  before?: number;
  /** How many messages at most, 1–100. Default 50. */
  limit?: number;
  /**
   * The epoch your offsets belong to (`joined.position.epoch`, `page.epoch`).
   * If the room log has been reset since, the request is refused with
   * `epoch_mismatch` rather than mixing two logs: join the room again and page
   * from its answer. Default: none (the current log, whatever its epoch).
   */
  epoch?: string;
}

/** One page of a room's older chat, oldest first. */
export interface HistoryPage<T = unknown> {
  /** Chat messages, oldest first, each with `offset < before`; at most `limit`. */
  messages: RoomChatMessage<T>[];
  /**
   * True when the server knows of an older message than the first of
   * `messages`: ask again with `before: messages[0].offset`. False once
   * nothing older is stored (without PostgreSQL: once the recent log is
   * exhausted).
   */
  more: boolean;
  /** The room log's epoch, which every offset in `messages` belongs to. */
  epoch: string;
}

/** Payload of the `state` event. */
export interface StateChange {
  /** The state before. */
  from: ClientState;
  /** The state now (`client.state`). */
  to: ClientState;
  /**
   * Why the client stopped, on every change to `closed`: `closed` after
   * `close()`, `connect_timeout`, `auth_failed`, `unsupported_version`,
   * `transport_failed`, or `closed` after a terminal close code.
   */
  error?: NerveClientError;
}

/** Payload of the `disconnected` event. */
export interface DisconnectInfo {
  /** WebSocket close code (1006 when the socket failed without a close frame). */
  code: number;
  /** The close reason the server sent ('' if none). */
  reason: string;
  /** Whether the client is going to reconnect on its own. */
  willReconnect: boolean;
}

/** Payload of the `recovery_failed` event. */
export interface RecoveryFailed {
  /** The room that needs a resync. */
  room: string;
  /** The rejoin's answer: `history` holds recent messages to resync from, `position` the new position. */
  joined: JoinedFrame;
}

/** A chat message of a typed room: `data` is the room's chat payload type. */
export type RoomChatMessage<T = unknown> = Omit<ChatMessage, 'data'> & {
  /** The payload, as published (typed by the app; not checked at run time). */
  data: T;
};

/** An ephemeral message of a typed room: `data` is the room's ephemeral payload type. */
export type RoomEphemeralMessage<T = unknown> = Omit<EphemeralMessage, 'data'> & {
  /** The payload, as published (typed by the app; not checked at run time). */
  data: T;
};

/** A message of a typed room; narrow on `class` to get the payload type. */
export type RoomMessage<Chat = unknown, Ephemeral = Chat> = RoomChatMessage<Chat> | RoomEphemeralMessage<Ephemeral>;

/** The `joined` answer of a typed room: `history` holds typed chat. */
export type RoomJoined<Chat = unknown> = Omit<JoinedFrame, 'history'> & {
  /** Recent messages, or the missed ones when resuming, oldest first. */
  history: RoomChatMessage<Chat>[];
};

/** Payload of a room's `recovery_failed` event. */
export interface RoomRecoveryFailed<Chat = unknown> {
  /** The room that needs a resync. */
  room: string;
  /** The rejoin's answer: `history` holds recent messages to resync from, `position` the new position. */
  joined: RoomJoined<Chat>;
}

/**
 * Events of a `Room` (from `client.room(name)`), name → payload: the
 * client's events that concern this room, typed by its payloads. Each is
 * emitted right after the client's event of the same name.
 */
export interface RoomEvents<Chat = unknown, Ephemeral = Chat> {
  /** A chat or ephemeral message in this room (chat: also the missed ones replayed after a resume). */
  message: RoomMessage<Chat, Ephemeral>;
  /** A user's first connection joined this room (needs the `presence` right). */
  member_joined: MemberJoinedFrame;
  /** A user's last connection left this room (needs the `presence` right). */
  member_left: MemberLeftFrame;
  /** A member's presence state changed (not sent in a large room). */
  member_updated: MemberUpdatedFrame;
  /** A large room's member count (instead of member_joined / member_left); `listed: true`: member events resume. */
  member_count: MemberCountFrame;
  /** This room was joined again after a reconnect. */
  rejoined: RoomJoined<Chat>;
  /** This room must be resynced from `joined.history`: see the client's `recovery_failed`. */
  recovery_failed: RoomRecoveryFailed<Chat>;
  /** The server API ended this room; it is not rejoined. */
  room_ended: RoomEndedFrame;
  /** A member's read position moved (yours too, from another device); `room.readPositions` / `room.unread` already show it. Needs the `presence` right. */
  read: ReadPushFrame;
  /** An `error` event of the client concerning this room (a failed rejoin or gap fill). */
  error: NerveClientError;
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
  /** A user's first connection joined a room this client is in (needs the `presence` right there). */
  member_joined: MemberJoinedFrame;
  /** A user's last connection left a room this client is in (needs the `presence` right there). */
  member_left: MemberLeftFrame;
  /** A member's presence state changed in a room this client is in (not sent in a large room). */
  member_updated: MemberUpdatedFrame;
  /** The member count of a large room this client is in, instead of member_joined / member_left. */
  member_count: MemberCountFrame;
  /** A member's read position moved in a room this client is in (needs the `presence` right there). */
  read: ReadPushFrame;
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
