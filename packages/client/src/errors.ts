/**
 * The one error type the SDK rejects with and emits. `code` is either a
 * server `ErrorCode` (the server answered the request with an `error` frame)
 * or a `ClientErrorCode` (the failure happened on this side of the wire).
 * Branch on `code`, never on `message`.
 */
import type { ErrorCode } from '../../protocol/src/codes.js';
import type { ErrorFrame } from '../../protocol/src/frames.js';

/**
 * Failures detected by the SDK itself (the server's codes are `ErrorCode`,
 * documented with what to do in docs/protocol.md and docs/sdk.md).
 */
export const ClientErrorCode = {
  /**
   * The request got no answer within `requestTimeoutMs`. The server may or may
   * not have acted on it. Also emitted as an `error` event when one connection
   * attempt got no `welcome` in time (the client then retries).
   */
  Timeout: 'timeout',
  /**
   * `connect()` got no `welcome` within `connectTimeoutMs`: the server is down,
   * unreachable, or accepts TCP but never answers. Before the first connection
   * the client then stops (state `closed`); while reconnecting only that
   * `connect()` call rejects and the client keeps trying. Show "cannot reach
   * the server" and call `connect()` again when the user asks.
   */
  ConnectTimeout: 'connect_timeout',
  /** The client was closed (by `close()` or by a terminal close code) before the request was answered. */
  Closed: 'closed',
  /** The connection dropped while the request was in flight; it was not retried (only chat publishes and joins are). */
  Disconnected: 'disconnected',
  /** The server sent something the SDK could not understand. */
  BadFrame: 'bad_frame',
  /** `getToken` (the connection's, or a join's) threw or returned an empty token. */
  TokenFailed: 'token_failed',
  /** The WebSocket could not be constructed (bad URL, no WebSocket implementation). */
  TransportFailed: 'transport_failed',
} as const;
/** A code of {@link ClientErrorCode}. */
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/**
 * Every promise of the SDK rejects with this, and every `error` event carries
 * it. Branch on {@link NerveClientError.code | code}.
 */
export class NerveClientError extends Error {
  /** Always `'NerveClientError'`. */
  override readonly name = 'NerveClientError';
  /** A server `ErrorCode` (the server refused with an `error` frame) or a {@link ClientErrorCode}. */
  readonly code: ErrorCode | ClientErrorCode;
  /** For `rate_limited` (and `quota_exceeded` on a per-second quota): how long the server asks to wait before trying again. */
  readonly retryAfterMs: number | undefined;
  /** For `quota_exceeded`: which tenant quota refused (`connections`, `publishes`, `signals`, `rooms`, `stored_bytes`). */
  readonly quota: string | undefined;
  /** The room the failed operation concerned, when there is one (for example a failed rejoin). */
  readonly room: string | undefined;

  /** Made by the SDK; apps get these, they need not make them (tests may). */
  constructor(code: ErrorCode | ClientErrorCode, message: string, options?: { cause?: unknown; retryAfterMs?: number; room?: string; quota?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
    this.room = options?.room;
    this.quota = options?.quota;
  }
}

/** Whether `value` is a {@link NerveClientError} (for `catch (error: unknown)`). */
export function isNerveClientError(value: unknown): value is NerveClientError {
  return value instanceof NerveClientError;
}

/** The error a server `error` frame stands for. */
export function errorFromFrame(frame: ErrorFrame, room?: string): NerveClientError {
  const options: { retryAfterMs?: number; room?: string; quota?: string } = {};
  if (frame.retryAfterMs !== undefined) options.retryAfterMs = frame.retryAfterMs;
  if (frame.quota !== undefined) options.quota = frame.quota;
  if (room !== undefined) options.room = room;
  return new NerveClientError(frame.code, frame.message, options);
}

/** The message of a thrown value, which need not be an Error. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
