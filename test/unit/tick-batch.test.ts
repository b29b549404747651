import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextTick } from 'node:process';
import { TickBatch } from '../../src/tick-batch.js';

describe('TickBatch', () => {
  it('hands the requests of one tick to one flush, and answers each by position', async () => {
    const flushes: number[][] = [];
    const batch = new TickBatch<number, string>({
      max: 10,
      schedule: nextTick,
      flush: async (items) => {
        flushes.push(items);
        return items.map((n) => `#${n}`);
      },
    });
    const answers = await Promise.all([1, 2, 3].map((n) => batch.add(n)));
    assert.deepEqual(answers, ['#1', '#2', '#3']);
    assert.deepEqual(flushes, [[1, 2, 3]]);
    // A later tick is a new batch.
    assert.equal(await batch.add(4), '#4');
    assert.deepEqual(flushes, [[1, 2, 3], [4]]);
  });

  it('opens a new batch when one is full', async () => {
    const flushes: number[][] = [];
    const batch = new TickBatch<number, number>({ max: 2, schedule: nextTick, flush: async (items) => (flushes.push(items), items) });
    assert.deepEqual(await Promise.all([1, 2, 3, 4, 5].map((n) => batch.add(n))), [1, 2, 3, 4, 5]);
    assert.deepEqual(flushes, [[1, 2], [3, 4], [5]]);
  });

  it('fails only the request answered with an Error, and every request when the flush throws or miscounts', async () => {
    let mode: 'per-item' | 'throw' | 'short' = 'per-item';
    const batch = new TickBatch<number, number>({
      max: 10,
      schedule: nextTick,
      flush: async (items) => {
        if (mode === 'throw') throw new Error('store down');
        if (mode === 'short') return items.slice(1);
        return items.map((n) => (n === 2 ? new Error(`bad ${n}`) : n));
      },
    });
    const outcome = (results: PromiseSettledResult<number>[]) => results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message));
    assert.deepEqual(outcome(await Promise.allSettled([1, 2, 3].map((n) => batch.add(n)))), [1, 'bad 2', 3]);
    mode = 'throw';
    assert.deepEqual(outcome(await Promise.allSettled([1, 2].map((n) => batch.add(n)))), ['store down', 'store down']);
    mode = 'short';
    const short = outcome(await Promise.allSettled([1, 2].map((n) => batch.add(n))));
    assert.ok(
      short.every((text) => typeof text === 'string' && /answered 1 of 2/.test(text)),
      String(short),
    );
  });
});
