import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Outbox } from '../../src/events/outbox.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';
import { waitFor } from '../helpers/wait.js';

/** A fake lane: sends park until the test settles them. */
function fakeLane() {
  const calls: Array<{ item: number; resolve: () => void; reject: (e: Error) => void }> = [];
  const delivered: number[] = [];
  let ready = false;
  return {
    calls,
    delivered,
    setReady(value: boolean) {
      ready = value;
    },
    isReady: () => ready,
    send: (item: number) =>
      new Promise<void>((resolve, reject) => {
        calls.push({
          item,
          resolve: () => {
            delivered.push(item);
            resolve();
          },
          reject,
        });
      }),
  };
}

const unavailable = (e: unknown) => isNerveError(e) && e.code === 'unavailable';

describe('Outbox', () => {
  it('holds items while the lane is not ready, rejects `unavailable` when full, sends in order when back', async () => {
    const lane = fakeLane();
    const outbox = new Outbox<number>({ limit: 3, send: lane.send, isReady: lane.isReady, retryBaseMs: 1 });
    const accepted = [1, 2, 3].map((n) => outbox.enqueue(n));
    assert.equal(outbox.depth(), 3);
    await assert.rejects(outbox.enqueue(4), unavailable);
    lane.setReady(true);
    outbox.pump();
    assert.deepEqual(
      lane.calls.map((c) => c.item),
      [1, 2, 3],
    );
    for (const call of lane.calls) call.resolve();
    await Promise.all(accepted);
    assert.equal(outbox.depth(), 0);
  });

  it('puts failed in-flight sends back in their place, so order survives a cut', async () => {
    const lane = fakeLane();
    lane.setReady(true);
    const outbox = new Outbox<number>({ limit: 10, maxInFlight: 3, send: lane.send, isReady: lane.isReady, retryBaseMs: 1 });
    const accepted = [1, 2, 3, 4, 5].map((n) => outbox.enqueue(n));
    assert.deepEqual(
      lane.calls.map((c) => c.item),
      [1, 2, 3],
    );
    lane.calls[0]!.resolve();
    lane.setReady(false);
    // The connection drops: the two in flight fail, newest first.
    lane.calls[2]!.reject(new Error('cut'));
    lane.calls[1]!.reject(new Error('cut'));
    lane.calls.length = 0;
    await waitFor(() => outbox.depth() === 4, { what: 'failed sends back in the outbox' });
    lane.setReady(true);
    await waitFor(() => lane.calls.length === 3, { what: 'resend' });
    assert.deepEqual(
      lane.calls.map((c) => c.item),
      [2, 3, 4],
    );
    for (let i = 0; i < 4; i++) {
      await waitFor(() => lane.calls[i], { what: `send ${i}` });
      lane.calls[i]!.resolve();
    }
    await Promise.all(accepted);
    assert.deepEqual(lane.delivered, [1, 2, 3, 4, 5]);
  });

  it('rejects an item after maxSendFailures non-transient failures, and the rest flows', async () => {
    const lane = fakeLane();
    lane.setReady(true);
    const outbox = new Outbox<number>({
      send: (n) => (n === 13 ? Promise.reject(new Error('too large')) : lane.send(n)),
      isReady: lane.isReady,
      isTransient: () => false,
      maxSendFailures: 2,
      retryBaseMs: 1,
    });
    const bad = outbox.enqueue(13);
    const good = outbox.enqueue(1);
    await assert.rejects(bad, unavailable);
    await waitFor(() => lane.calls[0], { what: 'good send' });
    lane.calls[0]!.resolve();
    await good;
  });

  it('drain() reports a timeout and stop() rejects what is left', async () => {
    const lane = fakeLane();
    const outbox = new Outbox<number>({ send: lane.send, isReady: lane.isReady });
    const pending = outbox.enqueue(1);
    assert.equal(await outbox.drain(5), false);
    assert.equal(outbox.stop(), 1);
    await assert.rejects(pending, unavailable);
    await assert.rejects(outbox.enqueue(2), unavailable);
  });
  it('reports how long its oldest send in flight has waited, and 0 once every send settled', async () => {
    const lane = fakeLane();
    lane.setReady(true);
    const outbox = new Outbox<number>({ send: lane.send, isReady: lane.isReady });
    assert.equal(outbox.oldestInFlightMs(), 0);
    const before = Date.now();
    const first = outbox.enqueue(1);
    const second = outbox.enqueue(2);
    const after = Date.now();
    assert.equal(lane.calls.length, 2);
    // Measured against a clock of the test's choosing: the first send started between `before` and `after`.
    const waited = outbox.oldestInFlightMs(after + 1000);
    assert.ok(waited >= 1000 && waited <= 1000 + (after - before), `waited ${waited}`);
    lane.calls[0]!.resolve();
    await first;
    // The second one is now the oldest: it started no earlier than the first.
    const next = outbox.oldestInFlightMs(after + 1000);
    assert.ok(next >= 1000 && next <= waited, `the second send waited ${next}`);
    lane.calls[1]!.resolve();
    await second;
    assert.equal(outbox.oldestInFlightMs(after + 1000), 0);
  });
});
