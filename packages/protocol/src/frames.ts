/**
 * Protocol v1 frames. JSON text frames, one object per WebSocket message,
 * discriminated by `op`. Client frames are validated by `schema.ts`; server
 * frames are typed here. Documented with examples in docs/protocol.md.
 *
 * No dependencies and only constants at run time, so the browser SDK can import it freely.
 */
import type { DeleteFrame, EditFrame, MessageAction, MessageTarget, ReactFrame, Reaction } from './actions.js';
import type { ErrorCode } from './codes.js';
import type { ReadAnswerFrame, ReadFrame, ReadPushFrame } from './receipts.js';

export const PROTOCOL_VERSION = 1;

/** Request id chosen by the client; echoed on the answer. */
export type RequestId = string | number;

/** Classes a client may publish into a room. `signal` goes to a user, `lifecycle` is server-only. */
export type PublishClass = 'chat' | 'ephemeral';
/** Every message class the server routes (see src/routing.ts). */
export type MessageClass = 'signal' | 'ephemeral' | 'chat' | 'presence' | 'lifecycle';

/** Kinds of direct signal, the one list the schemas check. Payloads are opaque to the server. */
export const SIGNAL_KINDS = ['offer', 'answer', 'candidate', 'bye', 'renegotiate', 'custom'] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];

/** A client's position in a room's chat log, used to resume. */
export interface StreamPosition {
  /** Offset of the last message the client has seen (0 = nothing yet). */
  offset: number;
  /** Identifies one incarnation of the room log; a new epoch means the log was reset. */
  epoch: string;
}

// ---------------------------------------------------------------- client → server

export interface ConnectFrame {
  op: 'connect';
  rid: RequestId;
  /** Protocol version the client speaks. */
  v: number;
  /** Credential for the configured authenticator (a JWT, for example). */
  token?: string;
  /** Client-chosen user id; accepted only by the dev authenticator. */
  user?: string;
}

export interface JoinFrame {
  op: 'join';
  rid: RequestId;
  room: string;
  /** Resume from this position: the answer then carries the missed messages. */
  since?: StreamPosition;
  /** How many recent chat messages to return when not resuming (default: the node's `historyOnJoin`). */
  history?: number;
  /**
   * A join token for this room, minted by the application's backend (or
   * `POST /api/tokens/join`): a JWT whose `room` claim names the room. It
   * grants rights in this room the connection token may lack.
   */
  token?: string;
  /** Your presence state in this room (a JSON object, docs/protocol.md "Presence state"); the SDK sends it again on every rejoin. */
  state?: PresenceState;
}

export interface LeaveFrame {
  op: 'leave';
  rid: RequestId;
  room: string;
}

export interface PublishFrame {
  op: 'publish';
  rid: RequestId;
  room: string;
  class: PublishClass;
  /** Any JSON value. */
  data: unknown;
  /** Client message id: a retry with the same id is not stored or delivered twice (chat only). */
  cmid?: string;
  /** For ephemeral messages: a key such as `cursor`; while a recipient reads slowly only the latest message per (sender, key) is kept for it. */
  key?: string;
  /** W3C Trace Context of the sender's span (`00-<trace id>-<span id>-<flags>`); the server's spans for this message join its trace when tracing is on. */
  traceparent?: string;
}

export interface SignalFrame {
  op: 'signal';
  rid: RequestId;
  /** Target user id; every connection of that user receives the signal. */
  to: string;
  kind: SignalKind;
  /** Any JSON value (an SDP description, an ICE candidate, ...). */
  data: unknown;
  /** W3C Trace Context of the sender's span, as on `publish`. */
  traceparent?: string;
}

export interface PresenceFrame {
  op: 'presence';
  rid: RequestId;
  room: string;
}

/**
 * A member's presence state: a JSON object the app chooses (name, avatar,
 * status, "in a call"), at most `PRESENCE_LIMITS.stateBytes` as JSON by
 * default. Keys of the token's `presence` claim override the client's.
 */
export type PresenceState = Record<string, unknown>;

/**
 * Defaults of the presence limits (docs/protocol.md, "Presence state"): the
 * largest state as JSON text, and the `presence_set` token bucket per
 * connection and room.
 */
export const PRESENCE_LIMITS = { stateBytes: 1024, setBurst: 10, setPerSecond: 2 } as const;

/** Replace your presence state in a joined room; the room's members get `member_updated`. */
export interface PresenceSetFrame {
  op: 'presence_set';
  rid: RequestId;
  room: string;
  state: PresenceState;
}

/** What a `call` request does: enter or leave the call. */
export const CALL_ACTIONS = ['join', 'leave'] as const;
export type CallAction = (typeof CALL_ACTIONS)[number];

/**
 * Enter or leave a call of a joined room, so that the server times it
 * (docs/protocol.md, "Calls"): `call.started` and `call.ended` events with
 * each participant's time. The media still flows peer to peer; this only
 * tells the server who is in the call. Leaving the room or disconnecting
 * leaves its calls.
 */
export interface CallFrame {
  op: 'call';
  rid: RequestId;
  room: string;
  /** The call's id in the room, room id syntax; every participant names the same one. */
  call: string;
  action: CallAction;
}

export interface PingFrame {
  op: 'ping';
  rid: RequestId;
}

/** Replace the connection's token before it expires. The new token must name the same user and tenant. */
export interface RefreshFrame {
  op: 'refresh';
  rid: RequestId;
  token: string;
}

/** The default and the largest `limit` of a `history` request (docs/protocol.md, `history`). */
export const HISTORY_PAGE_LIMITS = { default: 50, max: 100 } as const;

/**
 * Page back through a joined room's chat, beyond what `join` returned: the
 * newest `limit` messages with an offset below `before`. The cursor is the
 * offset, the same one across the hot history and the PostgreSQL archive.
 */
export interface HistoryFrame {
  op: 'history';
  rid: RequestId;
  room: string;
  /** Only messages with `offset < before` (an integer ≥ 1); absent = the newest messages. Pass the oldest offset you hold. */
  before?: number;
  /** How many messages at most, 1–100 (default 50). */
  limit?: number;
  /** The epoch your offsets belong to: if the room log is in another epoch now, the answer is `epoch_mismatch`. */
  epoch?: string;
}

export type ClientFrame =
  | ConnectFrame
  | JoinFrame
  | LeaveFrame
  | PublishFrame
  | SignalFrame
  | PresenceFrame
  | PresenceSetFrame
  | PingFrame
  | RefreshFrame
  | HistoryFrame
  | CallFrame
  | EditFrame
  | DeleteFrame
  | ReactFrame
  | ReadFrame;

export type ClientOp = ClientFrame['op'];

// ---------------------------------------------------------------- server → client

export interface Limits {
  /** Largest accepted WebSocket frame, in bytes. */
  maxFrameBytes: number;
  /** Most rooms one connection may be in at once. */
  maxRoomsPerConnection: number;
  /** Longest accepted room id. */
  maxRoomIdLength: number;
  /** Sustained frames per second per connection (token bucket refill rate). */
  ratePerSecond: number;
  /** Burst size of the per-connection token bucket. */
  rateBurst: number;
  /** The server sends a WebSocket ping every this many milliseconds; a connection that has not answered the previous one is cut. */
  heartbeatMs: number;
}

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface WelcomeFrame {
  op: 'welcome';
  rid: RequestId;
  v: number;
  connId: string;
  nodeId: string;
  user: string;
  tenant: string;
  limits: Limits;
  iceServers: IceServer[];
  /** When the connection's token expires (ms since epoch): refresh before then or the connection is closed with 4010. Absent when it never expires. */
  expiresAt?: number;
}

export interface Member {
  user: string;
  /** Server time (ms since epoch) when the user's first connection joined. */
  since: number;
  /** The member's presence state, when one was set (by a connection of theirs or their token's `presence` claim). */
  state?: PresenceState;
}

/** A chat message as delivered and as kept in history. */
export interface ChatMessage {
  op: 'message';
  class: 'chat';
  room: string;
  /** Server-assigned event id. */
  id: string;
  /** Authenticated sender user id. */
  from: string;
  /** Server time, ms since epoch. */
  ts: number;
  /** Position in the room log; strictly increasing within an epoch. */
  offset: number;
  epoch: string;
  data: unknown;
  cmid?: string;
  /**
   * On the entries of `edit`, `delete` and `react` only: they apply to
   * `target` and are folded into it (fold.ts), not shown as messages.
   */
  action?: MessageAction;
  /** The message an entry with `action` applies to. */
  target?: MessageTarget;
  /** Folded (archive rows, the SDK's message list): the `ts` of the edit whose `data` this is. */
  editedAt?: number;
  /** Folded: the message was deleted; its `data` is null. */
  deleted?: true;
  /** Folded: reactions per emoji, in order of first use. */
  reactions?: Reaction[];
}

export interface EphemeralMessage {
  op: 'message';
  class: 'ephemeral';
  room: string;
  id: string;
  from: string;
  ts: number;
  data: unknown;
  key?: string;
}

export type MessageFrame = ChatMessage | EphemeralMessage;

export interface JoinedFrame {
  op: 'joined';
  rid: RequestId;
  room: string;
  /** The members by `since`: all of them, or the first `count` up to the node's `presence-list-max` in a large room. */
  members: Member[];
  /** How many members the room has (each user once). More than `members.length`: a large room, where members get `member_count` frames. */
  count: number;
  /** Recent messages, or the missed ones when resuming, oldest first. */
  history: ChatMessage[];
  /** The room log's position after `history`. */
  position: StreamPosition;
  /** Present when `since` was given: whether exactly the missed messages were returned. */
  recovered?: boolean;
  /** Your read position in the room log's current epoch (0: none). Sent by every server with read positions. */
  read?: number;
  /** Chat messages after `read`, not yours, not edit/delete/react entries; at most `READ_LIMITS.unreadMax` (docs/protocol.md, "Read positions"). */
  unread?: number;
  /** The other users' read positions in this epoch (user → offset), while the room has at most `READ_LIMITS.listMax` of them. */
  reads?: Record<string, number>;
}

export interface LeftFrame {
  op: 'left';
  rid: RequestId;
  room: string;
}

export interface AckFrame {
  op: 'ack';
  rid: RequestId;
  /** Event id of the stored or routed message. */
  id: string;
  ts: number;
  /** Chat only: where the message was stored. */
  offset?: number;
  epoch?: string;
  /** Chat only: true when `cmid` matched an earlier publish and nothing new was stored. */
  duplicate?: boolean;
  /**
   * Signal only: true when no node had the target user but the user was
   * connected moments ago, so the signal waits in their mailbox and is
   * delivered if they reconnect within the mailbox TTL (not proof of delivery).
   */
  queued?: boolean;
}

export interface SignalDelivery {
  op: 'signal';
  id: string;
  from: string;
  /** Connection id of the sender, so a peer can answer one tab of a multi-tab user. */
  fromConn: string;
  kind: SignalKind;
  data: unknown;
  ts: number;
}

export interface MemberJoinedFrame {
  op: 'member_joined';
  room: string;
  user: string;
  ts: number;
  /** The room's member count right after this join. */
  count?: number;
  /** The member's presence state, when the join set one. */
  state?: PresenceState;
}

export interface MemberLeftFrame {
  op: 'member_left';
  room: string;
  user: string;
  ts: number;
  /** The room's member count right after this leave. */
  count?: number;
}

/** A member's presence state changed (`presence_set`); conflated: a reader that lags gets the latest per member. */
export interface MemberUpdatedFrame {
  op: 'member_updated';
  room: string;
  user: string;
  state: PresenceState;
  ts: number;
}

/**
 * Instead of member frames in a room above the node's `presence-list-max`:
 * the count, and how many joined and left since this node's previous
 * `member_count` for the room, at most one per interval. `listed: true`: the
 * room is back at or below the threshold and member frames resume (ask
 * `presence` for the list).
 */
export interface MemberCountFrame {
  op: 'member_count';
  room: string;
  count: number;
  joined: number;
  left: number;
  listed: boolean;
  ts: number;
}

export interface PresenceAnswerFrame {
  op: 'presence';
  rid: RequestId;
  room: string;
  /** As in `joined`: all members, or the first ones in a large room. */
  members: Member[];
  /** How many members the room has. */
  count: number;
}

/** Answer to `presence_set`: the state the members now see (the token's `presence` claim merged over yours). */
export interface PresenceSetAnswerFrame {
  op: 'presence_set';
  rid: RequestId;
  room: string;
  state: PresenceState;
}

/** Answer to `refresh`: the connection now runs on the new token. */
export interface RefreshedFrame {
  op: 'refreshed';
  rid: RequestId;
  /** When the new token expires (ms since epoch); absent when it never expires. */
  expiresAt?: number;
}

/** A room was ended by the server API: this connection is no longer in it. */
export interface RoomEndedFrame {
  op: 'room_ended';
  room: string;
  /** Free text from the API caller, at most 200 characters. */
  reason: string;
  ts: number;
}

/**
 * Why a node tells a room's members to resync (`resync.reason`):
 * - `unrecoverable`: this node missed chat on the cross-node bus and the
 *   history could not return exactly the missed messages (log reset, trimmed,
 *   more than `recoveryLimit`);
 * - `history_unavailable`: it missed chat and could not read the history;
 * - `position_unknown`: it may have missed chat before it knew the room's position.
 */
export type ResyncReason = 'unrecoverable' | 'history_unavailable' | 'position_unknown';

/**
 * Chat of a room may have been missed and the node could not fill the gap
 * itself: join the room again with `since` (your last position) to fetch it,
 * or resync from the answer when it says `recovered: false`.
 */
export interface ResyncFrame {
  op: 'resync';
  room: string;
  reason: ResyncReason;
}

/** Answer to `history`: one page of the room's chat, oldest first. */
export interface HistoryAnswerFrame {
  op: 'history';
  rid: RequestId;
  room: string;
  /** Oldest first, every one with `offset < before`, at most `limit`, all of the epoch below. */
  messages: ChatMessage[];
  /** True only when the server knows of an older stored message than the first of `messages`: ask again with `before` = its offset. */
  more: boolean;
  /** The room log's current epoch, which every offset here belongs to. */
  epoch: string;
}

/** Answer to `call`: the server's time of the join or leave, the one the call's events count from. */
export interface CallAnswerFrame {
  op: 'call';
  rid: RequestId;
  room: string;
  call: string;
  action: CallAction;
  /** Server time, ms since epoch. */
  ts: number;
}

export interface PongFrame {
  op: 'pong';
  rid: RequestId;
  ts: number;
}

export interface ErrorFrame {
  op: 'error';
  /** The request this answers, when the request had a readable id. */
  rid?: RequestId;
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
  /** With `quota_exceeded`: which tenant quota refused the request. */
  quota?: string;
}

export type ServerFrame =
  | WelcomeFrame
  | JoinedFrame
  | LeftFrame
  | AckFrame
  | MessageFrame
  | SignalDelivery
  | MemberJoinedFrame
  | MemberLeftFrame
  | MemberUpdatedFrame
  | MemberCountFrame
  | PresenceAnswerFrame
  | PresenceSetAnswerFrame
  | HistoryAnswerFrame
  | CallAnswerFrame
  | PongFrame
  | RefreshedFrame
  | RoomEndedFrame
  | ResyncFrame
  | ReadAnswerFrame
  | ReadPushFrame
  | ErrorFrame;

export type ServerOp = ServerFrame['op'];
