import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryReadPositions } from '../../src/receipts/memory.js';
import { advances, decodePosition, encodePosition, type ReadPositions } from '../../src/receipts/receipts.js';
import { receiptsConformance } from '../conformance/receipts.js';

// Instances of the memory driver share nothing, so "a second node" is a second handle on the first.
receiptsConformance('memory', (shareWith): ReadPositions => {
  if (!shareWith) return new MemoryReadPositions();
  return {
    driver: 'memory',
    open: async () => {},
    advance: (room, user, position) => shareWith.advance(room, user, position),
    read: (room, user, max) => shareWith.read(room, user, max),
    health: () => shareWith.health(),
    close: async () => {},
  };
});

describe('read position encoding', () => {
  it('splits at the first bar, so an epoch may hold one', () => {
    assert.equal(encodePosition({ offset: 12, epoch: 'a|b' }), '12|a|b');
    assert.deepEqual(decodePosition('12|a|b'), { offset: 12, epoch: 'a|b' });
    assert.equal(decodePosition('x|a'), undefined);
    assert.equal(decodePosition('|a'), undefined);
  });

  it('advances within an epoch only upwards, and to any offset of another epoch', () => {
    assert.equal(advances(undefined, { offset: 0, epoch: 'e' }), true);
    assert.equal(advances({ offset: 3, epoch: 'e' }, { offset: 3, epoch: 'e' }), false);
    assert.equal(advances({ offset: 3, epoch: 'e' }, { offset: 4, epoch: 'e' }), true);
    assert.equal(advances({ offset: 3, epoch: 'e' }, { offset: 1, epoch: 'f' }), true);
  });
});
