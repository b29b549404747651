import assert from 'node:assert/strict';
import { test } from 'node:test';
import { offsetStep, positionStep } from '../../packages/protocol/src/index.js';

test('offsetStep: within an epoch, at or below is seen, +1 is next, beyond is a gap', () => {
  assert.equal(offsetStep(5, true, 4), 'seen');
  assert.equal(offsetStep(5, true, 5), 'seen');
  assert.equal(offsetStep(5, true, 6), 'next');
  assert.equal(offsetStep(5, true, 7), 'gap');
  assert.equal(offsetStep(0, true, 1), 'next');
});

test('offsetStep: another epoch is a gap unless nothing was seen and this is the first message', () => {
  assert.equal(offsetStep(0, false, 1), 'next');
  assert.equal(offsetStep(0, false, 2), 'gap');
  assert.equal(offsetStep(5, false, 1), 'gap');
  assert.equal(offsetStep(5, false, 6), 'gap');
});

test('positionStep compares the epochs of a position', () => {
  assert.equal(positionStep({ offset: 3, epoch: 'e' }, 4, 'e'), 'next');
  assert.equal(positionStep({ offset: 3, epoch: 'e' }, 4, 'f'), 'gap');
  assert.equal(positionStep({ offset: 3, epoch: 'e' }, 2, 'e'), 'seen');
});
