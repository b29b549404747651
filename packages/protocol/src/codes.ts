/**
 * Error and close codes of protocol v1. Their meanings are documented in
 * docs/protocol.md; a code, once published, never changes meaning.
 */

/** Stable machine codes carried by `error` frames (and HTTP error bodies). */
export const ErrorCode = {
  /** The frame is not valid JSON text. */
  BadJson: 'bad_json',
  /** The frame is JSON but does not match the schema of its `op`. */
  InvalidFrame: 'invalid_frame',
  /** The `op` field names no operation of this protocol version. */
  UnknownOp: 'unknown_op',
  /** The `connect` frame asks for a protocol version this server does not speak. */
  UnsupportedVersion: 'unsupported_version',
  /** A request other than `connect` arrived before the connection was authenticated. */
  NotConnected: 'not_connected',
  /** A second `connect` arrived on an authenticated connection. */
  AlreadyConnected: 'already_connected',
  /** The credentials in `connect` were refused. The connection is then closed with 4001. */
  AuthFailed: 'auth_failed',
  /** The authenticated user may not do this: the token's room grants (or join token) do not allow it, or a `refresh` token names another user. */
  Forbidden: 'forbidden',
  /** A `refresh` token was refused (bad signature, expired, wrong audience...). The connection stays open until the current token expires. */
  RefreshFailed: 'refresh_failed',
  /** The per-IP or per-user connection limit was reached. After authentication the connection is then closed with 4011. */
  TooManyConnections: 'too_many_connections',
  /** A room id breaks the room id syntax. */
  InvalidRoom: 'invalid_room',
  /** A user id breaks the user id syntax. */
  InvalidUser: 'invalid_user',
  /** A request for a room this connection has not joined (publish, edit, delete, react, presence, presence_set, history, call, read, leave). */
  NotJoined: 'not_joined',
  /** A `history` or `read` request (or the `target` of `edit`, `delete`, `react`) named an `epoch` that is not the room log's current one: its offsets mean nothing now. */
  EpochMismatch: 'epoch_mismatch',
  /** An `edit`, `delete` or `react` names a chat message the room log does not hold at that offset with that id (never stored, an entry itself, or gone from the hot history with no archive behind it). */
  MessageNotFound: 'message_not_found',
  /** A presence state (`presence_set`, `join.state`, merged with the token's `presence` claim) is larger than the node's `presence-state-max-bytes` as JSON. */
  PresenceTooLarge: 'presence_too_large',
  /** A `call` request named a call id that breaks the room id syntax. */
  InvalidCall: 'invalid_call',
  /** A `call` join would put the connection in more than 8 calls. */
  TooManyCalls: 'too_many_calls',
  /** Joining would exceed the per-connection room limit. */
  TooManyRooms: 'too_many_rooms',
  /** The per-connection frame rate, the per-room publish rate, or a per-op rate (`presence_set`, `read`) was exceeded; see `retryAfterMs`. */
  RateLimited: 'rate_limited',
  /** A cluster-wide tenant quota (connections, publishes, signals, rooms, stored bytes) refused the request; `quota` says which. */
  QuotaExceeded: 'quota_exceeded',
  /** A direct signal's target user is connected nowhere. */
  PeerOffline: 'peer_offline',
  /** The cross-node bus is down; local delivery still works. */
  BusUnavailable: 'bus_unavailable',
  /** A lane the request needs is down (for example the event outbox is full). Retry later. */
  Unavailable: 'unavailable',
  /**
   * The store or the bus timed out after the command was sent: the publish or
   * signal may or may not have taken effect. Re-send chat with the same `cmid`
   * (one ack; `duplicate: true` if it was stored).
   */
  OutcomeUnknown: 'outcome_unknown',
  /** An unexpected server fault. Logged with the request id. */
  Internal: 'internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** WebSocket close codes used by nerve (RFC 6455 section 7.4 plus the 4000-4999 private range). */
export const CloseCode = {
  /** Normal closure, requested by the client. Do not reconnect. */
  Normal: 1000,
  /** The node is going away (drain or shutdown). Reconnect, preferably to another node. */
  GoingAway: 1001,
  /** A binary frame was received; protocol v1 is JSON text only. */
  UnsupportedData: 1003,
  /** A text frame was not valid UTF-8. */
  InvalidPayload: 1007,
  /** A frame exceeded the maximum frame size. */
  MessageTooBig: 1009,
  /** An unexpected fault (sent by the `ws` library, not by nerve itself today). Reconnect with backoff. */
  InternalError: 1011,
  /** The credentials were refused. Do not reconnect with the same credentials. */
  AuthFailed: 4001,
  /** No `connect` frame arrived within the handshake timeout. */
  HandshakeTimeout: 4002,
  /** The client's protocol version is not supported. Do not reconnect. */
  UnsupportedVersion: 4003,
  /** The connection kept violating limits (rate, invalid frames) after being told. Reconnect with backoff. */
  PolicyViolation: 4008,
  /** The client did not read fast enough; its send buffer stayed over the limit. Reconnect with backoff. */
  SlowConsumer: 4009,
  /** The connection's token expired and was not refreshed (`refresh` op). Reconnect with a fresh token. */
  TokenExpired: 4010,
  /** The user already has the most connections allowed on this node (`--max-connections-per-user`). Reconnect with backoff. */
  TooManyConnections: 4011,
  /** An operator disconnected the connection (admin API); the close reason is theirs. Do not reconnect on your own. */
  Disconnected: 4012,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Close codes after which a client should not reconnect on its own. */
export const TERMINAL_CLOSE_CODES: ReadonlySet<number> = new Set([
  CloseCode.Normal,
  CloseCode.AuthFailed,
  CloseCode.UnsupportedVersion,
  CloseCode.Disconnected,
]);
