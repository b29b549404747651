/**
 * Protocol v1 frames. JSON text frames, one object per WebSocket message,
 * discriminated by `op`. Client frames are validated by `schema.ts`; server
 * frames are typed here. Documented with examples in docs/protocol.md.
 *
 * The frames of each area live in their own module (connection-, room-,
 * chat-, presence-, call-frames.ts, actions.ts, receipts.ts); this one joins
 * them into the two unions and re-exports them, so every import of a frame
 * goes through one path. No dependencies and only constants at run time, so
 * the browser SDK can import it freely.
 */
import type { DeleteFrame, EditFrame, ReactFrame } from './actions.js';
import type { CallAnswerFrame, CallFrame, SignalDelivery, SignalFrame } from './call-frames.js';
import type { AckFrame, HistoryAnswerFrame, HistoryFrame, MessageFrame, PublishFrame } from './chat-frames.js';
import type { ConnectFrame, ErrorFrame, PingFrame, PongFrame, RefreshedFrame, RefreshFrame, WelcomeFrame } from './connection-frames.js';
import type {
  MemberCountFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  MemberUpdatedFrame,
  PresenceAnswerFrame,
  PresenceFrame,
  PresenceSetAnswerFrame,
  PresenceSetFrame,
} from './presence-frames.js';
import type { ReadAnswerFrame, ReadFrame, ReadPushFrame } from './receipts.js';
import type { JoinedFrame, JoinFrame, LeaveFrame, LeftFrame, ResyncFrame, RoomEndedFrame } from './room-frames.js';

export type { MessageClass, PublishClass, RequestId, StreamPosition } from './frame-basics.js';
export { PROTOCOL_VERSION } from './connection-frames.js';
export type { ConnectFrame, ErrorFrame, IceServer, Limits, PingFrame, PongFrame, RefreshedFrame, RefreshFrame, WelcomeFrame } from './connection-frames.js';
export type { JoinedFrame, JoinFrame, LeaveFrame, LeftFrame, ResyncFrame, ResyncReason, RoomEndedFrame } from './room-frames.js';
export { HISTORY_PAGE_LIMITS } from './chat-frames.js';
export type { AckFrame, ChatMessage, EphemeralMessage, HistoryAnswerFrame, HistoryFrame, MessageFrame, PublishFrame } from './chat-frames.js';
export { PRESENCE_LIMITS } from './presence-frames.js';
export type {
  Member,
  MemberCountFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  MemberUpdatedFrame,
  PresenceAnswerFrame,
  PresenceFrame,
  PresenceSetAnswerFrame,
  PresenceSetFrame,
  PresenceState,
} from './presence-frames.js';
export { CALL_ACTIONS, SIGNAL_KINDS } from './call-frames.js';
export type { CallAction, CallAnswerFrame, CallFrame, SignalDelivery, SignalFrame, SignalKind } from './call-frames.js';

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
