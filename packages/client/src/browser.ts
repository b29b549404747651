/**
 * Entry of the browser bundle (`/nerve-client.js`, built by
 * scripts/bundle-client.mjs): everything lands on the global `Nerve`.
 * Only browser-safe modules are imported here — no `ws`, no zod, no node:*.
 */
export { NerveClient } from './client.js';
export { ClientState } from './types.js';
export { NerveClientError, ClientErrorCode, isNerveClientError } from './errors.js';
export { PeerCall, isPolite } from './webrtc.js';
export { RoomCall } from './room-call.js';
export { Backoff } from './backoff.js';
export { CloseCode, ErrorCode, TERMINAL_CLOSE_CODES } from '../../protocol/src/codes.js';
export { PROTOCOL_VERSION } from '../../protocol/src/frames.js';
export { isValidRoomId, isValidUserId } from '../../protocol/src/ids.js';
