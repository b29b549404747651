/**
 * Token bucket: `burst` tokens, refilled at `perSecond`. Time is injected so
 * the limiter is unit-testable without sleeping.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(perSecond > 0) || !(burst >= 1)) throw new RangeError('TokenBucket needs perSecond > 0 and burst >= 1');
    this.tokens = burst;
    this.updatedAt = now();
  }

  /** Take one token. Returns 0 when allowed, otherwise the milliseconds until a token is available. */
  take(cost = 1): number {
    this.refill();
    if (this.tokens >= cost) {
      this.tokens -= cost;
      return 0;
    }
    return Math.ceil(((cost - this.tokens) / this.perSecond) * 1000);
  }

  /** Tokens available now (for tests and diagnostics). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  private refill(): void {
    const now = this.now();
    const elapsed = Math.max(0, now - this.updatedAt);
    this.updatedAt = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed / 1000) * this.perSecond);
  }
}

/** Counts events in a sliding window of fixed buckets; used for "too many errors" policing. */
export class WindowCounter {
  private readonly buckets: number[];
  private readonly bucketMs: number;
  private lastBucket: number;

  constructor(
    windowMs: number,
    bucketCount = 10,
    private readonly now: () => number = Date.now,
  ) {
    this.bucketMs = Math.max(1, Math.floor(windowMs / bucketCount));
    this.buckets = new Array<number>(bucketCount).fill(0);
    this.lastBucket = Math.floor(now() / this.bucketMs);
  }

  /** Add one event; returns the count in the window including it. */
  hit(): number {
    this.advance();
    const index = this.lastBucket % this.buckets.length;
    this.buckets[index] = (this.buckets[index] ?? 0) + 1;
    return this.total();
  }

  total(): number {
    this.advance();
    return this.buckets.reduce((sum, value) => sum + value, 0);
  }

  private advance(): void {
    const current = Math.floor(this.now() / this.bucketMs);
    const steps = Math.min(this.buckets.length, current - this.lastBucket);
    for (let i = 1; i <= steps; i++) this.buckets[(this.lastBucket + i) % this.buckets.length] = 0;
    if (current > this.lastBucket) this.lastBucket = current;
  }
}

/** How many of something each key holds (open connections per address, per user); keys at zero are forgotten. */
export class KeyCounter {
  private readonly counts = new Map<string, number>();

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  increment(key: string): void {
    this.counts.set(key, this.get(key) + 1);
  }

  decrement(key: string): void {
    const left = this.get(key) - 1;
    if (left > 0) this.counts.set(key, left);
    else this.counts.delete(key);
  }
}

/** Room buckets kept before idle ones (rooms with no local member) are pruned. */
const ROOM_BUCKETS_PRUNE_AT = 10_000;

/** The publish token bucket of each room channel on this node (`roomRatePerSecond`), beside each connection's own. */
export class RoomBuckets {
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    /** Whether the channel still has a local listener: only those buckets survive a prune. */
    private readonly listened: (channel: string) => boolean,
  ) {}

  /** 0 when the room may take one more message now, else ms to wait. */
  take(channel: string): number {
    let bucket = this.#buckets.get(channel);
    if (!bucket) {
      if (this.#buckets.size >= ROOM_BUCKETS_PRUNE_AT) {
        for (const known of this.#buckets.keys()) if (!this.listened(known)) this.#buckets.delete(known);
      }
      bucket = new TokenBucket(this.ratePerSecond, this.burst);
      this.#buckets.set(channel, bucket);
    }
    return bucket.take();
  }
}
