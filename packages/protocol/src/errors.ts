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
  /** For `quota_exceeded`: which tenant quota (`connections`, `publishes`, `signals`, `rooms`, `stored_bytes`). */
  readonly quota: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfterMs?: number; quota?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryAfterMs = options?.retryAfterMs;
    this.quota = options?.quota;
  }
}

export function isNerveError(value: unknown): value is NerveError {
  return value instanceof NerveError;
}
