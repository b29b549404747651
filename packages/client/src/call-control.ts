/**
 * The call's own vocabulary on top of SDP and candidates: the states an app
 * shows, why a call ended, and the control messages PeerCall sends in
 * signals of kind `custom`. The server does not interpret `custom`; a
 * control message is recognised by its `call` field, so an app's own
 * `custom` signals pass untouched.
 *
 * Control payloads (`data` of a `custom` signal, plus `toConn` as on every
 * PeerCall signal):
 * - `{ "call": "accepted" }`: the callee answered; the caller leaves `ringing`.
 * - `{ "call": "declined" }`, `{ "call": "busy" }`: the callee refused the
 *   offer (by hand, or because it is in another call); the caller's call ends.
 * - `{ "call": "media", "audio": boolean, "video": boolean }`: the sender's
 *   microphone and camera are on (`true`) or off. Sent when a call is
 *   accepted (both ways) and on every toggle.
 */

/**
 * Where a call stands, as an app shows it. Outgoing: `new` → `ringing` →
 * `accepted` → `connecting` → `connected`. Incoming (created with
 * `incoming`): `ringing` until `accept()`, then the same. `reconnecting`
 * while ICE recovers a dropped path. `declined`, `busy` and `ended` are
 * final; the `ended` event says why.
 */
export type CallState =
  /** Created; nothing sent or received yet. */
  | 'new'
  /** Outgoing: the offer is out and the callee has not answered. Incoming: waiting for `accept()` or `decline()`. */
  | 'ringing'
  /** The callee answered; media is being negotiated. */
  | 'accepted'
  /** ICE and DTLS are setting up the media path. */
  | 'connecting'
  /** Media flows. */
  | 'connected'
  /** The media path dropped after connecting; ICE is trying to restore it. */
  | 'reconnecting'
  /** Final: the callee declined. */
  | 'declined'
  /** Final: the callee was in another call. */
  | 'busy'
  /** Final, for every other end (see `CallEndReason`). */
  | 'ended';

/** Why a call ended: the `reason` of the `ended` event and of a final `call_state`. */
export type CallEndReason =
  /** `hangup()`, `close()` or `decline()` was called here. */
  | 'local'
  /** The peer sent `bye` (hung up, or cancelled the call while it rang here). */
  | 'remote'
  /** The callee declined (`declined` control). */
  | 'declined'
  /** The callee was busy (`busy` control). */
  | 'busy'
  /** Nobody answered within `ringTimeoutMs`. */
  | 'no_answer'
  /** Incoming: another connection (tab, device) of this user answered. */
  | 'answered_elsewhere'
  /** The peer was not connected anywhere when we signalled. */
  | 'peer_offline'
  /** The peer connection failed and could not be restarted. */
  | 'failed';

/** A `call_state` event. */
export interface CallStateChange {
  /** The state now. */
  state: CallState;
  /** The state before. */
  previous: CallState;
  /** Set with the final states: why the call ended. */
  reason?: CallEndReason;
}

/** Whether the microphone (`audio`) and the camera (`video`) send. */
export interface MediaState {
  /** The microphone sends. */
  audio: boolean;
  /** The camera sends. */
  video: boolean;
}

/** A control message, the `data` of a `custom` signal (see the file comment). */
export type CallControl = { call: 'accepted' } | { call: 'declined' } | { call: 'busy' } | ({ call: 'media' } & MediaState);

/** The control message in a signal's data, or undefined for anything else (an app's own `custom` signal). */
export function parseControl(data: unknown): CallControl | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const value = data as Record<string, unknown>;
  switch (value.call) {
    case 'accepted':
    case 'declined':
    case 'busy':
      return { call: value.call };
    case 'media':
      return { call: 'media', audio: value.audio !== false, video: value.video !== false };
    default:
      return undefined;
  }
}

/** States after which nothing happens. */
export function isFinal(state: CallState): boolean {
  return state === 'declined' || state === 'busy' || state === 'ended';
}

/** The final state a call ends in for `reason`. */
export function finalState(reason: CallEndReason): CallState {
  return reason === 'declined' || reason === 'busy' ? reason : 'ended';
}

/** The call state a `connectionState` of the peer connection means, once the call is accepted. */
export function stateForConnection(connection: string, current: CallState): CallState {
  if (connection === 'connected') return 'connected';
  if (connection === 'disconnected' || connection === 'failed') return 'reconnecting';
  if (connection === 'connecting') return current === 'connected' || current === 'reconnecting' ? 'reconnecting' : 'connecting';
  return current;
}
