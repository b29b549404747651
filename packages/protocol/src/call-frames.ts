/**
 * Call frames: direct signals between users (the WebRTC offer/answer/ICE
 * exchange, opaque to the server) and the `call` request by which the server
 * times a call (docs/protocol.md, `signal`, `call`).
 */
import type { RequestId } from './frame-basics.js';

/** Kinds of direct signal, the one list the schemas check. Payloads are opaque to the server. */
export const SIGNAL_KINDS = ['offer', 'answer', 'candidate', 'bye', 'renegotiate', 'custom'] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];

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
