import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeConsumerSpec, retryDelay, retryDelays } from '../../src/events/retry.js';

describe('retry delays', () => {
  it('fixed backoff waits the same each time', () => {
    const spec = normalizeConsumerSpec({ queue: 'q', bindings: ['#'], retryDelayMs: 1000, maxAttempts: 4 });
    assert.deepEqual(
      [1, 2, 3].map((attempt) => retryDelay(spec, attempt)),
      [1000, 1000, 1000],
    );
    assert.deepEqual(retryDelays(spec), [1000]);
  });

  it('exponential backoff doubles up to the cap, and needs one delay queue per distinct delay', () => {
    const spec = normalizeConsumerSpec({
      queue: 'q',
      bindings: ['#'],
      retryDelayMs: 1000,
      retryBackoff: 'exponential',
      maxRetryDelayMs: 5000,
      maxAttempts: 6,
    });
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((attempt) => retryDelay(spec, attempt)),
      [1000, 2000, 4000, 5000, 5000],
    );
    assert.deepEqual(retryDelays(spec), [1000, 2000, 4000, 5000]);
  });
});
