export { CloseCode, ErrorCode, TERMINAL_CLOSE_CODES } from './codes.js';
export { NerveError, isNerveError } from './errors.js';
export * from './frames.js';
export {
  MAX_ID_LENGTH,
  ROOM_ID_PATTERN,
  TENANT_ID_PATTERN,
  USER_ID_PATTERN,
  isValidRoomId,
  isValidTenantId,
  isValidUserId,
} from './ids.js';
export { decodeClientFrame, encodeFrame, type DecodeResult } from './codec.js';
export { MAX_FRAME_DEPTH } from './nesting.js';
export { offsetStep, positionStep, type OffsetStep } from './positions.js';
