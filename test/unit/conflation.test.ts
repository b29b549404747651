import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConflatedFrames, type BufferState, type OutgoingFrame } from '../../src/gateway/conflation.js';

/** At least the flush timer's interval (25 ms): one step of mocked time runs it once. */
const FLUSH_STEP_MS = 25;

function held(state: { now: BufferState }): { frames: ConflatedFrames; written: OutgoingFrame[] } {
  const written: OutgoingFrame[] = [];
  return {
    frames: new ConflatedFrames(
      () => state.now,
      (frame) => written.push(frame),
    ),
    written,
  };
}

describe('ConflatedFrames', () => {
  it('keeps the latest frame per key, a replaced key moving behind the others', () => {
    const { frames, written } = held({ now: 'full' });
    assert.equal(frames.hold('a', 'a1'), false);
    assert.equal(frames.hold('b', 'b1'), false);
    assert.equal(frames.hold('a', 'a2'), true);
    assert.equal(frames.size, 2);
    frames.flush();
    assert.deepEqual(written, ['b1', 'a2']);
    assert.equal(frames.size, 0);
  });

  it('writes what it holds once the buffer drains, and drops it when the connection closes', (t) => {
    // The flush timer runs on mocked time: the test steps it, no real waiting and no elapsed-time bound.
    t.mock.timers.enable({ apis: ['setInterval'] });
    const state: { now: BufferState } = { now: 'full' };
    const { frames, written } = held(state);
    frames.hold('a', 'a1');
    for (let step = 0; step < 20; step += 1) t.mock.timers.tick(FLUSH_STEP_MS);
    assert.deepEqual(written, [], 'nothing is written while the buffer stays full');
    assert.equal(frames.size, 1);
    state.now = 'drained';
    t.mock.timers.tick(FLUSH_STEP_MS);
    assert.deepEqual(written, ['a1']);
    assert.equal(frames.size, 0);

    frames.hold('b', 'b1');
    state.now = 'closed';
    t.mock.timers.tick(FLUSH_STEP_MS);
    assert.equal(frames.size, 0);
    assert.deepEqual(written, ['a1'], 'a closed connection gets nothing more');
  });
});
