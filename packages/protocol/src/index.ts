export { CloseCode, ErrorCode, TERMINAL_CLOSE_CODES } from './codes.js';
export { NerveError, isNerveError } from './errors.js';
export { MAX_REACTION_LENGTH, MESSAGE_ACTIONS } from './actions.js';
export type {
  DeleteFrame,
  EditFrame,
  MessageAction,
  MessageActionFrame,
  MessageTarget,
  MessageTargetRef,
  ReactFrame,
  Reaction,
  ReactionData,
} from './actions.js';
export { applyEntry, foldEntries, foldMessages, isActionEntry, keyOf, type ActionEntry, type FoldedRun } from './fold.js';
export { CALL_ACTIONS, HISTORY_PAGE_LIMITS, PRESENCE_LIMITS, PROTOCOL_VERSION, SIGNAL_KINDS } from './frames.js';
export type {
  AckFrame,
  CallAction,
  CallAnswerFrame,
  CallFrame,
  ChatMessage,
  ClientFrame,
  ClientOp,
  ConnectFrame,
  EphemeralMessage,
  ErrorFrame,
  HistoryAnswerFrame,
  HistoryFrame,
  IceServer,
  JoinedFrame,
  JoinFrame,
  LeaveFrame,
  LeftFrame,
  Limits,
  Member,
  MemberJoinedFrame,
  MemberCountFrame,
  MemberLeftFrame,
  MemberUpdatedFrame,
  MessageClass,
  MessageFrame,
  PingFrame,
  PongFrame,
  PresenceAnswerFrame,
  PresenceFrame,
  PresenceSetAnswerFrame,
  PresenceSetFrame,
  PresenceState,
  PublishClass,
  PublishFrame,
  RefreshedFrame,
  RefreshFrame,
  RequestId,
  ResyncFrame,
  ResyncReason,
  RoomEndedFrame,
  ServerFrame,
  ServerOp,
  SignalDelivery,
  SignalFrame,
  SignalKind,
  StreamPosition,
  WelcomeFrame,
} from './frames.js';
export { READ_LIMITS, type ReadAnswerFrame, type ReadFrame, type ReadPushFrame } from './receipts.js';
export { MAX_ID_LENGTH, ROOM_ID_PATTERN, TENANT_ID_PATTERN, USER_ID_PATTERN, isValidRoomId, isValidTenantId, isValidUserId } from './ids.js';
export { decodeClientFrame, encodeFrame, type DecodeResult } from './codec.js';
export { MAX_FRAME_DEPTH } from './nesting.js';
export { offsetStep, positionStep, type OffsetStep } from './positions.js';
