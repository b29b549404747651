/**
 * Reconnect delays: exponential growth with full jitter. When a node drains
 * or crashes, all its clients lose their socket at once; without jitter they
 * would come back in synchronized waves. Each delay is drawn from the whole
 * window (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/);
 * the floor of `minDelayMs` keeps a client out of a tight loop.
 */

export interface BackoffOptions {
  /** Smallest delay and the base of the exponential window, ms. Default 250. */
  minDelayMs?: number;
  /** Largest delay, ms. Default 10000. */
  maxDelayMs?: number;
  /** Source of randomness in [0, 1). Default `Math.random` (tests pass their own). */
  random?: () => number;
}

export const DEFAULT_MIN_DELAY_MS = 250;
export const DEFAULT_MAX_DELAY_MS = 10_000;

/** Past this many attempts the window is capped anyway; stops 2 ** n from overflowing. */
const MAX_EXPONENT = 30;

/**
 * The delay before retry number `failures` (from 1) of a gap fill that failed or of a chat
 * publish answered `outcome_unknown`: the reconnect curve, jittered the same way, so the
 * members of a room whose history lane is down do not retry in lockstep. Throws `RangeError`
 * for the options `Backoff` refuses.
 */
export function retryDelays(options: BackoffOptions | false | undefined): (failures: number) => number {
  const retry = options === false ? {} : (options ?? {});
  const { min, max } = delayBounds(retry);
  return (failures) => backoffDelay(failures - 1, min, max, (retry.random ?? Math.random)());
}

/**
 * The delay bounds of `options`, defaults filled in; the one check of both
 * `Backoff` and `retryDelays`. Throws `RangeError` for a `minDelayMs` that
 * is negative or not a finite number, or a `maxDelayMs` that is below it
 * or not a finite number.
 */
function delayBounds(options: BackoffOptions): { min: number; max: number } {
  const min = options.minDelayMs ?? DEFAULT_MIN_DELAY_MS;
  const max = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  if (!Number.isFinite(min) || min < 0) throw new RangeError(`minDelayMs must be a finite number >= 0, got ${min}`);
  if (!Number.isFinite(max) || max < min) {
    throw new RangeError(`maxDelayMs must be a finite number >= minDelayMs (${min}), got ${max}`);
  }
  return { min, max };
}

/** Reconnect delays of one client: exponential windows with full jitter, reset after a success. */
export class Backoff {
  /** Smallest delay, ms. */
  readonly minDelayMs: number;
  /** Largest delay, ms. */
  readonly maxDelayMs: number;
  readonly #random: () => number;
  #attempt = 0;

  /** Throws `RangeError` for a negative or non-finite `minDelayMs`, or a `maxDelayMs` below it or non-finite. */
  constructor(options: BackoffOptions = {}) {
    const { min, max } = delayBounds(options);
    this.minDelayMs = min;
    this.maxDelayMs = max;
    this.#random = options.random ?? Math.random;
  }

  /** How many delays were handed out since the last `reset()`. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt: `min + U[0, min * 2^attempt)`, at most `max`. */
  next(): number {
    const delay = backoffDelay(this.#attempt, this.minDelayMs, this.maxDelayMs, this.#random());
    this.#attempt += 1;
    return delay;
  }

  /** Call after a successful connection: the next failure starts from the smallest window again. */
  reset(): void {
    this.#attempt = 0;
  }
}

/** The pure function behind `Backoff.next()`; `r` is a random number in [0, 1). */
export function backoffDelay(attempt: number, minDelayMs: number, maxDelayMs: number, r: number): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), MAX_EXPONENT);
  const window = Math.min(maxDelayMs, minDelayMs * 2 ** exponent);
  const jitter = Math.min(Math.max(r, 0), 1) * window;
  return Math.min(maxDelayMs, Math.floor(minDelayMs + jitter));
}
