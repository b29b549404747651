/**
 * Consumer defaults and the retry schedule, in one place so the memory and
 * RabbitMQ logs retry on exactly the same schedule.
 */
import type { ConsumerSpec } from './event-log.js';
import { ConfigError } from '../config/errors.js';
import { integer } from '../config/validate.js';
import { isValidPattern } from './topic.js';

export interface NormalizedConsumerSpec {
  queue: string;
  bindings: string[];
  prefetch: number;
  maxAttempts: number;
  retryDelayMs: number;
  retryBackoff: 'fixed' | 'exponential';
  maxRetryDelayMs: number;
}

const QUEUE_NAME = /^[A-Za-z0-9._~-]{1,100}$/;

export function normalizeConsumerSpec(spec: ConsumerSpec): NormalizedConsumerSpec {
  if (!QUEUE_NAME.test(spec.queue)) throw new ConfigError('queue', '1-100 characters of A-Z a-z 0-9 . _ ~ -', spec.queue);
  if (spec.bindings.length === 0) throw new ConfigError('bindings', 'at least one topic pattern', '[]');
  for (const pattern of spec.bindings) {
    if (!isValidPattern(pattern)) throw new ConfigError('bindings', 'topic patterns of words, `*` and `#` joined by `.`', pattern);
  }
  const retryBackoff = spec.retryBackoff ?? 'fixed';
  if (retryBackoff !== 'fixed' && retryBackoff !== 'exponential') {
    throw new ConfigError('retryBackoff', 'fixed | exponential', retryBackoff);
  }
  const retryDelayMs = integer('retryDelayMs', spec.retryDelayMs ?? 1000, 1, 86_400_000);
  return {
    queue: spec.queue,
    bindings: [...new Set(spec.bindings)],
    prefetch: integer('prefetch', spec.prefetch ?? 16, 1, 65_535),
    maxAttempts: integer('maxAttempts', spec.maxAttempts ?? 5, 1, 1000),
    retryDelayMs,
    retryBackoff,
    maxRetryDelayMs: integer('maxRetryDelayMs', spec.maxRetryDelayMs ?? Math.max(retryDelayMs, 3_600_000), retryDelayMs, 86_400_000),
  };
}

/** Delay before delivery number `attempt + 1`, after delivery `attempt` (1-based) asked for a retry. */
export function retryDelay(spec: NormalizedConsumerSpec, attempt: number): number {
  if (spec.retryBackoff === 'fixed') return spec.retryDelayMs;
  // Exponential: delay, 2×delay, 4×delay ... capped. No jitter: the lane delays
  // whole queues (one TTL per retry queue), so every event of one attempt waits the same.
  const exponent = Math.min(attempt - 1, 30);
  return Math.min(spec.retryDelayMs * 2 ** exponent, spec.maxRetryDelayMs);
}

/** Distinct delays a consumer can need, for declaring one delay queue each. */
export function retryDelays(spec: NormalizedConsumerSpec): number[] {
  const delays = new Set<number>();
  for (let attempt = 1; attempt < spec.maxAttempts; attempt++) delays.add(retryDelay(spec, attempt));
  return [...delays].sort((a, b) => a - b);
}
