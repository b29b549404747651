/**
 * `@nerve-rt/client`: the SDK for browsers, Node (global `WebSocket` on 22+,
 * `ws` passed in on 20), web workers and React Native. A small curated API; the
 * protocol's frame types are re-exported so apps can type their handlers.
 * Guide: docs/sdk.md.
 *
 * @packageDocumentation
 */
export { NerveClient } from './client.js';
export { Room } from './room.js';
export { MessageList, type MessageListEvents } from './message-list.js';
export type { MessageAction, MessageTarget, MessageTargetRef, Reaction } from '../../protocol/src/actions.js';
export { READ_LIMITS, type ReadAnswerFrame, type ReadPushFrame } from '../../protocol/src/receipts.js';
export { RoomMembers, type RoomMembersEvents } from './members.js';
export {
  ClientState,
  type NerveClientOptions,
  type NerveClientEvents,
  type ReconnectOptions,
  type JoinOptions,
  type ChatPublishOptions,
  type EphemeralPublishOptions,
  type HistoryOptions,
  type HistoryPage,
  type StateChange,
  type DisconnectInfo,
  type RecoveryFailed,
  type RoomEvents,
  type RoomMessage,
  type RoomChatMessage,
  type RoomEphemeralMessage,
  type RoomJoined,
  type RoomRecoveryFailed,
} from './types.js';
export { NerveClientError, ClientErrorCode, isNerveClientError } from './errors.js';
export { Backoff, backoffDelay, type BackoffOptions } from './backoff.js';
export { TypedEmitter, type Listener } from './emitter.js';
export type { WebSocketLike, WebSocketConstructor } from './socket.js';
export {
  PeerCall,
  isPolite,
  pairCallId,
  type PeerCallOptions,
  type PeerCallEvents,
  type CallEndReason,
  type CallState,
  type CallStateChange,
  type MediaState,
  type GetTrack,
  type TrackKind,
  type SignalChannel,
} from './webrtc.js';
export { RoomCall, MAX_ROOM_CALL_SIZE, type RoomCallOptions, type RoomCallEvents, type RoomCallInvite } from './room-call.js';
export type {
  IceServerInit,
  MediaStreamShape,
  MediaStreamTrackShape,
  MediaStreamTrackType,
  MediaStreamType,
  PeerConnectionState,
  RTCPeerConnectionConstructor,
  RTCPeerConnectionShape,
  RTCPeerConnectionType,
  RTCTrackEventShape,
  RTCTrackEventType,
} from './webrtc-types.js';
export { CloseCode, ErrorCode, TERMINAL_CLOSE_CODES } from '../../protocol/src/codes.js';
export { PROTOCOL_VERSION } from '../../protocol/src/frames.js';
export { MAX_ID_LENGTH, isValidRoomId, isValidUserId } from '../../protocol/src/ids.js';
export type {
  AckFrame,
  ChatMessage,
  EphemeralMessage,
  IceServer,
  JoinedFrame,
  Limits,
  Member,
  MemberCountFrame,
  MemberJoinedFrame,
  MemberLeftFrame,
  MemberUpdatedFrame,
  MessageFrame,
  PresenceState,
  RefreshedFrame,
  RoomEndedFrame,
  SignalDelivery,
  SignalKind,
  StreamPosition,
  WelcomeFrame,
} from '../../protocol/src/frames.js';
