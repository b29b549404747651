import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyCounter, TokenBucket, WindowCounter } from '../../src/gateway/rate-limit.js';

describe('TokenBucket', () => {
  it('allows a burst, then answers with the wait until the next token', () => {
    let now = 1_000;
    const bucket = new TokenBucket(10, 3, () => now);
    assert.equal(bucket.take(), 0);
    assert.equal(bucket.take(), 0);
    assert.equal(bucket.take(), 0);
    assert.equal(bucket.take(), 100); // one token per 100 ms at 10/s
    now += 50;
    assert.equal(bucket.take(), 50);
    now += 50;
    assert.equal(bucket.take(), 0);
  });

  it('refills up to the burst and no further', () => {
    let now = 0;
    const bucket = new TokenBucket(100, 5, () => now);
    for (let i = 0; i < 5; i++) assert.equal(bucket.take(), 0);
    now += 60_000;
    assert.equal(bucket.available(), 5);
  });

  it('tolerates a clock that goes backwards', () => {
    let now = 10_000;
    const bucket = new TokenBucket(1, 1, () => now);
    assert.equal(bucket.take(), 0);
    now -= 5_000;
    assert.ok(bucket.take() > 0);
  });

  it('rejects nonsense configuration at construction', () => {
    assert.throws(() => new TokenBucket(0, 1), RangeError);
    assert.throws(() => new TokenBucket(1, 0), RangeError);
  });
});

describe('WindowCounter', () => {
  it('counts events inside the window and forgets older ones', () => {
    let now = 0;
    const counter = new WindowCounter(10_000, 10, () => now);
    assert.equal(counter.hit(), 1);
    now += 5_000;
    assert.equal(counter.hit(), 2);
    now += 6_000; // the first hit is now outside the window
    assert.equal(counter.total(), 1);
    now += 60_000;
    assert.equal(counter.total(), 0);
  });
});

describe('KeyCounter', () => {
  it('counts per key and forgets keys that reach zero', () => {
    const counter = new KeyCounter();
    counter.increment('a');
    counter.increment('a');
    counter.increment('b');
    assert.equal(counter.get('a'), 2);
    counter.decrement('a');
    counter.decrement('b');
    counter.decrement('b');
    assert.equal(counter.get('a'), 1);
    assert.equal(counter.get('b'), 0);
    assert.equal((counter as unknown as { counts: Map<string, number> }).counts.has('b'), false);
  });
});
