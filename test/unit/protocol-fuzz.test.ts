/**
 * Fuzzing the frame decoder with fast-check: whatever the text, it never
 * throws, answers a typed result, echoes no input in its messages, and
 * keeps only well-formed request ids.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeClientFrame } from '../../packages/protocol/src/codec.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';

const CODES = new Set<string>(Object.values(ErrorCode));
const OPS = ['connect', 'join', 'leave', 'publish', 'signal', 'presence', 'ping', 'refresh', 'teleport', '__proto__', 'constructor'];

/** Frames that look almost right: a known op with random fields of random types. */
const nearFrame = fc.record(
  {
    op: fc.oneof(fc.constantFrom(...OPS), fc.string()),
    rid: fc.oneof(fc.integer(), fc.string({ maxLength: 80 }), fc.double(), fc.constant(null)),
    room: fc.oneof(fc.string({ maxLength: 700 }), fc.integer(), fc.constant(null)),
    v: fc.oneof(fc.integer(), fc.string()),
    token: fc.oneof(fc.string({ maxLength: 50 }), fc.integer()),
    class: fc.oneof(fc.constantFrom('chat', 'ephemeral', 'signal'), fc.string()),
    data: fc.jsonValue(),
    since: fc.oneof(fc.record({ offset: fc.integer(), epoch: fc.string() }), fc.anything()),
    to: fc.string({ maxLength: 200 }),
    kind: fc.string(),
  },
  { requiredKeys: [] },
);

function check(text: string): void {
  const result = decodeClientFrame(text);
  if (result.ok) {
    assert.equal(typeof result.frame.op, 'string');
    assert.ok(typeof result.frame.rid === 'string' || typeof result.frame.rid === 'number');
    return;
  }
  assert.ok(CODES.has(result.error.code), result.error.code);
  assert.ok(result.error.message.length <= 120, 'messages are short and ours');
  if (result.rid !== undefined) assert.ok(typeof result.rid === 'number' ? Number.isSafeInteger(result.rid) && result.rid >= 0 : result.rid.length <= 64);
}

describe('frame decoder fuzz', () => {
  it('never throws on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 2000, unit: 'binary' }), (text) => check(text)),
      { numRuns: 2000 },
    );
  });

  it('never throws on arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => check(JSON.stringify(value))),
      { numRuns: 1000 },
    );
  });

  it('answers near-miss frames with a typed result and never echoes input', () => {
    fc.assert(
      fc.property(nearFrame, (frame) => {
        const text = JSON.stringify(frame);
        check(text);
        const result = decodeClientFrame(text);
        if (!result.ok && typeof frame.room === 'string' && frame.room.length > 8) assert.ok(!result.error.message.includes(frame.room));
      }),
      { numRuns: 2000 },
    );
  });

  it('strips fields the server stamps, at any generated value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string(), fc.integer(), (from, id, offset) => {
        const result = decodeClientFrame(JSON.stringify({ op: 'publish', rid: 1, room: 'r', class: 'chat', data: 1, from, id, offset, epoch: id, ts: offset }));
        assert.ok(result.ok);
        for (const field of ['from', 'id', 'offset', 'epoch', 'ts']) assert.equal(field in result.frame, false, field);
      }),
      { numRuns: 300 },
    );
  });
});
