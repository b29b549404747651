import type { ErrorCode } from './codes.js';

/**
 * The one error type that crosses the wire. `code` is stable and documented;
 * `message` is for humans and may change. Never branch on `message`.
 */
export class NerveError extends Error {
  override readonly name = 'NerveError';
  readonly code: ErrorCode;
  /** For `rate_limited`: how long to wait before trying again. */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
  }
}

export function isNerveError(value: unknown): value is NerveError {
  return value instanceof NerveError;
}
