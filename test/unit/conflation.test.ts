import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflatedFrames, type BufferState, type OutgoingFrame } from '../../src/gateway/conflation.js';

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

  it('writes what it holds once the buffer drains, and drops it when the connection closes', async () => {
    const state: { now: BufferState } = { now: 'full' };
    const { frames, written } = held(state);
    frames.hold('a', 'a1');
    await sleep(40);
    assert.deepEqual(written, []);
    state.now = 'drained';
    await sleep(40);
    assert.deepEqual(written, ['a1']);

    state.now = 'full';
    frames.hold('b', 'b1');
    state.now = 'closed';
    await sleep(40);
    assert.equal(frames.size, 0);
    assert.deepEqual(written, ['a1']);
  });
});
