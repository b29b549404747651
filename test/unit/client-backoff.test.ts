import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Backoff, backoffDelay, retryDelays, type BackoffOptions } from '../../packages/client/src/backoff.js';

test('defaults are 250 ms to 10 s', () => {
  const backoff = new Backoff();
  assert.equal(backoff.minDelayMs, 250);
  assert.equal(backoff.maxDelayMs, 10_000);
});

test('the window doubles per attempt: min + U[0, min * 2^attempt)', () => {
  const low = new Backoff({ minDelayMs: 100, maxDelayMs: 100_000, random: () => 0 });
  const high = new Backoff({ minDelayMs: 100, maxDelayMs: 100_000, random: () => 0.999999 });
  const lows = [low.next(), low.next(), low.next(), low.next()];
  const highs = [high.next(), high.next(), high.next(), high.next()];
  assert.deepEqual(lows, [100, 100, 100, 100]);
  assert.deepEqual(highs, [199, 299, 499, 899]);
});

test('delays never exceed maxDelayMs, even after very many attempts', () => {
  const backoff = new Backoff({ minDelayMs: 250, maxDelayMs: 10_000, random: () => 0.999999 });
  let last = 0;
  for (let i = 0; i < 2000; i += 1) last = backoff.next();
  assert.equal(last, 10_000);
  assert.equal(backoffDelay(10_000, 250, 10_000, 0.5), 5250);
});

test('reset() starts from the smallest window again', () => {
  const backoff = new Backoff({ minDelayMs: 10, maxDelayMs: 1000, random: () => 0.5 });
  backoff.next();
  backoff.next();
  backoff.next();
  assert.equal(backoff.attempt, 3);
  backoff.reset();
  assert.equal(backoff.attempt, 0);
  assert.equal(backoff.next(), 15);
});

test('bad configuration fails at construction', () => {
  assert.throws(() => new Backoff({ minDelayMs: -1 }), RangeError);
  assert.throws(() => new Backoff({ minDelayMs: 500, maxDelayMs: 100 }), /maxDelayMs/);
  assert.throws(() => new Backoff({ maxDelayMs: Number.POSITIVE_INFINITY }), RangeError);
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return assert.fail('did not throw');
}

test('retryDelays refuses the reconnect options Backoff refuses, with the same error', () => {
  const bad: BackoffOptions[] = [
    { minDelayMs: -1 },
    { minDelayMs: Number.NaN },
    { maxDelayMs: Number.NaN },
    { maxDelayMs: Number.POSITIVE_INFINITY },
    { minDelayMs: 500, maxDelayMs: 100 },
  ];
  for (const options of bad) {
    const refused = thrown(() => new Backoff(options));
    assert.ok(refused instanceof RangeError, JSON.stringify(options));
    assert.throws(() => retryDelays(options), { name: 'RangeError', message: refused.message }, JSON.stringify(options));
  }
  for (const options of [undefined, false, {}, { minDelayMs: 0, maxDelayMs: 0 }, { minDelayMs: 100, maxDelayMs: 100 }] as const) {
    assert.doesNotThrow(() => new Backoff(options === false ? {} : options));
    assert.equal(typeof retryDelays(options)(1), 'number');
  }
});

test('property: every delay is within [min, max] and within the attempt window', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 5000 }),
      fc.integer({ min: 0, max: 100_000 }),
      fc.integer({ min: 0, max: 200 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (min, extra, attempt, r) => {
        const max = min + extra;
        const delay = backoffDelay(attempt, min, max, r);
        assert.ok(Number.isInteger(delay));
        assert.ok(delay >= min && delay <= max, `${delay} not in [${min}, ${max}]`);
        assert.ok(delay <= min + min * 2 ** Math.min(attempt, 30));
      },
    ),
  );
});

test('full jitter spreads a herd: many clients at one attempt get many different delays', () => {
  const delays = new Set<number>();
  for (let i = 0; i < 200; i += 1) delays.add(new Backoff({ minDelayMs: 250, maxDelayMs: 10_000 }).next());
  // 200 draws from a 250 ms window: a synchronized herd would give 1 value.
  assert.ok(delays.size > 50, `only ${delays.size} distinct delays`);
});
