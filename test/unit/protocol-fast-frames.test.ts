/**
 * The hand-written checks of fast-frames.ts must agree with the zod schemas:
 * whatever they accept, zod accepts and decodes to the same frame. On
 * generated frames near the valid ones, and on valid ones (which they must
 * not leave to zod: that is their whole point).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { fastFrame } from '../../packages/protocol/src/fast-frames.js';
import { clientFrameSchemas } from '../../packages/protocol/src/schema.js';

const rid = fc.oneof(
  fc.integer({ min: -5, max: 1_000_000 }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 0, -0, 1.5),
  fc.string({ maxLength: 70 }),
  fc.string({ minLength: 62, maxLength: 67 }),
  fc.constant(null),
  fc.boolean(),
);
const shortString = (max: number) =>
  fc.oneof(fc.string({ maxLength: max + 3 }), fc.string({ minLength: max - 2, maxLength: max + 2 }), fc.integer(), fc.constant(null));
const token = fc.oneof(fc.string({ maxLength: 66 }), fc.string({ minLength: 62, maxLength: 67 }), fc.constant(''), fc.integer(), fc.constant(null));
const data = fc.oneof(fc.jsonValue(), fc.constant(undefined));
const hex = (length: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdefA'), minLength: length, maxLength: length });
const traceparent = fc.oneof(
  fc.tuple(hex(2), hex(32), hex(16), hex(2)).map((parts) => parts.join('-')),
  fc.string({ maxLength: 60 }),
  fc.integer(),
  fc.constant(null),
);

const nearPublish = fc.record(
  {
    op: fc.constant('publish'),
    rid,
    room: shortString(512),
    class: fc.constantFrom('chat', 'ephemeral', 'signal', ''),
    data,
    cmid: token,
    key: token,
    traceparent,
    from: fc.string(),
    extra: fc.jsonValue(),
  },
  { requiredKeys: ['op'] },
);
// Frames with every required field well formed: without them, a publish with
// its four required fields almost never comes out of nearPublish, and the
// "some took the fast path" check below failed about one run in five.
const wellFormedPublish = fc.record(
  {
    op: fc.constant('publish'),
    rid,
    room: fc.stringMatching(/^[a-z0-9]{1,16}$/),
    class: fc.constantFrom('chat', 'ephemeral'),
    data: fc.jsonValue(),
    cmid: token,
    key: token,
    traceparent,
  },
  { requiredKeys: ['op', 'room', 'class', 'data'] },
);
const nearSignal = fc.record(
  {
    op: fc.constant('signal'),
    rid,
    to: shortString(512),
    kind: fc.constantFrom('offer', 'answer', 'candidate', 'bye', 'renegotiate', 'custom', 'Offer', ''),
    data,
    traceparent,
    fromConn: fc.string(),
  },
  { requiredKeys: ['op'] },
);
const nearPing = fc.record({ op: fc.constant('ping'), rid, ts: fc.integer() }, { requiredKeys: ['op'] });

/** As the decoder sees a frame: after a trip through JSON. */
function asParsed(frame: object): Record<string, unknown> {
  return JSON.parse(JSON.stringify(frame)) as Record<string, unknown>;
}

function agrees(frame: object): boolean {
  const record = asParsed(frame);
  const op = record.op as 'publish' | 'signal' | 'ping';
  const fast = fastFrame(op, record);
  const slow = clientFrameSchemas[op].safeParse(record);
  if (fast !== undefined) {
    assert.ok(slow.success, `fast path accepted what zod refuses: ${JSON.stringify(record)}`);
    assert.deepStrictEqual(fast, slow.data);
  }
  return fast !== undefined;
}

describe('fast frame checks', () => {
  for (const [op, arbitrary] of [
    ['publish', fc.oneof(nearPublish, wellFormedPublish)],
    ['signal', nearSignal],
    ['ping', nearPing],
  ] as const) {
    it(`${op}: accepts only what zod accepts, and decodes it the same`, () => {
      let accepted = 0;
      fc.assert(
        fc.property(arbitrary, (frame) => {
          if (agrees(frame)) accepted += 1;
        }),
        { numRuns: 3000 },
      );
      assert.ok(accepted > 0, 'some generated frames took the fast path');
    });
  }

  it('takes the fast path for valid frames, optional fields included', () => {
    const valid = [
      { op: 'publish', rid: 1, room: 'r', class: 'chat', data: { text: 'hi' }, cmid: 'c1' },
      { op: 'publish', rid: 'a', room: 'r', class: 'ephemeral', data: null, key: 'cursor' },
      { op: 'publish', rid: 0, room: 'r', class: 'ephemeral', data: 0, from: 'spoofed', id: 'x' },
      { op: 'signal', rid: 2, to: 'bob', kind: 'offer', data: { sdp: 'v=0' } },
      { op: 'signal', rid: 3, to: 'bob', kind: 'candidate', data: false, from: 'spoofed' },
      { op: 'ping', rid: 9 },
    ];
    for (const frame of valid) assert.equal(agrees(frame), true, JSON.stringify(frame));
    // Stamped fields are stripped, as zod strips them.
    assert.deepEqual(fastFrame('signal', asParsed(valid[4]!)), { op: 'signal', rid: 3, to: 'bob', kind: 'candidate', data: false });
  });

  it('leaves other ops and invalid frames to zod', () => {
    assert.equal(fastFrame('join', { op: 'join', rid: 1, room: 'r' }), undefined);
    assert.equal(fastFrame('signal', { op: 'signal', rid: 1, to: 'bob', kind: 'offer' }), undefined, 'data missing');
    assert.equal(fastFrame('publish', { op: 'publish', rid: 1, room: 'r', class: 'chat', data: 1, cmid: '' }), undefined, 'empty cmid');
    assert.equal(fastFrame('ping', { op: 'ping', rid: -1 }), undefined);
  });
});
