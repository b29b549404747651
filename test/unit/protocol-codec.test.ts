import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeClientFrame, encodeFrame, type DecodeResult } from '../../packages/protocol/src/codec.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import type { ClientFrame, ClientOp } from '../../packages/protocol/src/frames.js';

const decode = (value: unknown): DecodeResult => decodeClientFrame(JSON.stringify(value));

function assertError(result: DecodeResult, code: ErrorCode, rid?: string | number): void {
  assert.equal(result.ok, false, `expected ${code}, decoded ${JSON.stringify(result)}`);
  if (result.ok) return;
  assert.ok(result.error instanceof NerveError);
  assert.equal(result.error.code, code);
  if (rid === undefined) assert.equal('rid' in result, false, 'no rid expected');
  else assert.equal(result.rid, rid);
}

/** One valid frame per op, with every optional field set. */
const VALID: Record<ClientOp, ClientFrame> = {
  connect: { op: 'connect', rid: 1, v: 1, token: 'jwt.token.here', user: 'alice' },
  join: { op: 'join', rid: 'r-2', room: 'lobby', since: { offset: 3, epoch: 'e1' }, history: 20, token: 'join.token.here', state: { status: 'here' } },
  leave: { op: 'leave', rid: 3, room: 'lobby' },
  publish: { op: 'publish', rid: 4, room: 'lobby', class: 'chat', data: { text: 'hi' }, cmid: 'c-1', key: 'k' },
  signal: { op: 'signal', rid: 5, to: 'bob', kind: 'offer', data: { sdp: 'v=0' } },
  presence: { op: 'presence', rid: 6, room: 'lobby' },
  presence_set: { op: 'presence_set', rid: 12, room: 'lobby', state: { status: 'away', avatar: { url: 'https://example.com/a.png' } } },
  ping: { op: 'ping', rid: 7 },
  refresh: { op: 'refresh', rid: 8, token: 'jwt.token.new' },
  history: { op: 'history', rid: 9, room: 'lobby', before: 120, limit: 50, epoch: 'e1' },
  edit: { op: 'edit', rid: 'e', room: 'lobby', target: { id: 'm-1', offset: 4, epoch: 'e1' }, data: { text: 'fixed' }, cmid: 'c-e' },
  delete: { op: 'delete', rid: 'd', room: 'lobby', target: { id: 'm-1', offset: 4 }, cmid: 'c-d' },
  react: { op: 'react', rid: 'x', room: 'lobby', target: { id: 'm-1', offset: 4 }, emoji: '👍', on: false, cmid: 'c-x' },
  call: { op: 'call', rid: 10, room: 'lobby', call: 'standup', action: 'join' },
  read: { op: 'read', rid: 11, room: 'lobby', offset: 42, epoch: 'e1' },
};

/** For each op, fields set to a value of the wrong type or out of range. */
const INVALID_FIELDS: Record<ClientOp, Array<[field: string, value: unknown]>> = {
  connect: [
    ['v', '1'],
    ['v', 1.5],
    ['token', 5],
    ['token', ''],
    ['user', 5],
    ['user', 'x'.repeat(600)],
  ],
  join: [
    ['room', 5],
    ['room', null],
    ['room', 'x'.repeat(600)],
    ['since', 'e1:3'],
    ['since', { offset: -1, epoch: 'e' }],
    ['since', { offset: 1.5, epoch: 'e' }],
    ['since', { offset: 1, epoch: '' }],
    ['since', { offset: 1 }],
    ['history', '10'],
    ['history', 1001],
    ['history', -1],
    ['state', 'here'],
    ['state', ['here']],
    ['state', null],
  ],
  presence_set: [
    ['room', 5],
    ['state', 'away'],
    ['state', [1, 2]],
    ['state', null],
  ],
  leave: [
    ['room', 5],
    ['room', ['lobby']],
  ],
  publish: [
    ['room', 5],
    ['class', 'signal'],
    ['class', 'lifecycle'],
    ['class', 1],
    ['cmid', 5],
    ['cmid', ''],
    ['cmid', 'x'.repeat(65)],
    ['key', 5],
    ['key', ''],
  ],
  signal: [
    ['to', 5],
    ['kind', 'hello'],
    ['kind', null],
  ],
  presence: [
    ['room', 5],
    ['room', {}],
  ],
  ping: [],
  refresh: [
    ['token', 5],
    ['token', ''],
    ['token', 'x'.repeat(8193)],
  ],
  history: [
    ['room', 5],
    ['before', 0],
    ['before', -1],
    ['before', 1.5],
    ['before', '120'],
    ['before', Number.MAX_SAFE_INTEGER + 2],
    ['limit', 0],
    ['limit', 101],
    ['limit', 2.5],
    ['limit', '50'],
    ['epoch', ''],
    ['epoch', 'e'.repeat(65)],
    ['epoch', 7],
  ],
  edit: [
    ['room', 5],
    ['target', 'm-1'],
    ['target', { id: 'm-1', offset: 0 }],
    ['target', { id: '', offset: 4 }],
    ['target', { id: 'm-1', offset: 4, epoch: '' }],
    ['cmid', 'x'.repeat(65)],
  ],
  delete: [
    ['target', null],
    ['target', { id: 'm-1' }],
    ['target', { id: 'm-1', offset: 1.5 }],
  ],
  react: [
    ['emoji', ''],
    ['emoji', 'x'.repeat(33)],
    ['emoji', 5],
    ['on', 'true'],
  ],
  call: [
    ['room', 5],
    ['call', 5],
    ['call', 'x'.repeat(600)],
    ['action', 'hold'],
    ['action', 1],
  ],
  read: [
    ['room', 5],
    ['offset', -1],
    ['offset', 1.5],
    ['offset', '3'],
    ['offset', Number.MAX_SAFE_INTEGER + 2],
    ['epoch', ''],
    ['epoch', 'e'.repeat(65)],
  ],
};

const REQUIRED: Record<ClientOp, string[]> = {
  connect: ['v'],
  join: ['room'],
  leave: ['room'],
  publish: ['room', 'class', 'data'],
  signal: ['to', 'kind', 'data'],
  presence: ['room'],
  presence_set: ['room', 'state'],
  ping: [],
  refresh: ['token'],
  history: ['room'],
  edit: ['room', 'target', 'data'],
  delete: ['room', 'target'],
  react: ['room', 'target', 'emoji'],
  call: ['room', 'call', 'action'],
  read: ['room', 'offset'],
};

const OPS = Object.keys(VALID) as ClientOp[];

describe('decodeClientFrame', () => {
  for (const op of OPS) {
    describe(op, () => {
      it('decodes a valid frame unchanged', () => {
        const result = decode(VALID[op]);
        assert.deepEqual(result, { ok: true, frame: VALID[op] });
      });

      // Registered only for ops that have such fields (ping has none): a loop over nothing asserts nothing.
      if (INVALID_FIELDS[op].length > 0)
        it('answers invalid_frame with the rid for each badly typed field', () => {
          const frame = VALID[op];
          for (const [field, value] of INVALID_FIELDS[op]) {
            const result = decode({ ...frame, [field]: value });
            assertError(result, ErrorCode.InvalidFrame, frame.rid);
            if (!result.ok) assert.match(result.error.message, new RegExp(`^invalid field: ${field}`));
          }
        });

      if (REQUIRED[op].length > 0)
        it('answers invalid_frame with the rid when a required field is missing', () => {
          const frame = VALID[op];
          for (const field of REQUIRED[op]) {
            const copy: Record<string, unknown> = { ...frame };
            delete copy[field];
            assertError(decode(copy), ErrorCode.InvalidFrame, frame.rid);
          }
        });

      it('answers without a rid when the rid itself is invalid', () => {
        for (const rid of [undefined, null, '', 'x'.repeat(65), -1, 1.5, Number.MAX_SAFE_INTEGER + 2, {}, [1], true]) {
          const copy: Record<string, unknown> = { ...VALID[op], rid };
          if (rid === undefined) delete copy.rid;
          assertError(decode(copy), ErrorCode.InvalidFrame);
        }
      });

      it('strips the fields the server stamps', () => {
        // A field of the op's own (`history.epoch`, the client's position) is the client's, not a stamp.
        const stamps = ['from', 'id', 'offset', 'ts', 'epoch', 'fromConn'].filter((field) => !(field in VALID[op]));
        const stamped = { ...Object.fromEntries(stamps.map((field) => [field, 'forged'])), ...VALID[op] };
        const result = decode(stamped);
        assert.ok(result.ok);
        if (!result.ok) return;
        for (const field of stamps) assert.equal(field in result.frame, false, field);
        assert.deepEqual(result.frame, VALID[op]);
      });
    });
  }

  it('accepts the boundary values of numbers and strings', () => {
    assert.ok(decode({ op: 'ping', rid: 0 }).ok);
    assert.ok(decode({ op: 'ping', rid: Number.MAX_SAFE_INTEGER }).ok);
    assert.ok(decode({ op: 'ping', rid: 'x'.repeat(64) }).ok);
    assert.ok(decode({ op: 'join', rid: 1, room: 'r', history: 0, since: { offset: 0, epoch: 'e' } }).ok);
    assert.ok(decode({ op: 'join', rid: 1, room: 'r', history: 1000 }).ok);
    assert.ok(decode({ op: 'publish', rid: 1, room: 'r', class: 'ephemeral', data: null }).ok);
  });

  it('accepts any JSON value as data, but requires data', () => {
    for (const data of [null, 0, '', false, [], {}, [{ a: [1, 'b'] }]]) {
      assert.ok(decode({ ...VALID.publish, data }).ok, JSON.stringify(data));
      assert.ok(decode({ ...VALID.signal, data }).ok, JSON.stringify(data));
    }
  });

  it('answers bad_json for text that is not JSON, without a rid', () => {
    for (const text of ['', '{', '{"op":"ping","rid":1', 'undefined', "{'op':'ping'}", '\u0000', '{"op":"ping",}']) {
      assertError(decodeClientFrame(text), ErrorCode.BadJson);
    }
  });

  it('answers invalid_frame for JSON that is not an object, without a rid', () => {
    for (const text of ['null', '1', '"ping"', 'true', '[]', '[{"op":"ping","rid":1}]']) {
      assertError(decodeClientFrame(text), ErrorCode.InvalidFrame);
    }
  });

  it('answers unknown_op with the rid when it can read one', () => {
    assertError(decode({ op: 'shout', rid: 9 }), ErrorCode.UnknownOp, 9);
    assertError(decode({ op: 'shout', rid: 'a' }), ErrorCode.UnknownOp, 'a');
    assertError(decode({ rid: 9 }), ErrorCode.UnknownOp, 9);
    assertError(decode({ op: 5, rid: 9 }), ErrorCode.UnknownOp, 9);
    assertError(decode({ op: 'shout', rid: -1 }), ErrorCode.UnknownOp);
    // Inherited property names are not ops.
    for (const op of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) assertError(decode({ op, rid: 1 }), ErrorCode.UnknownOp, 1);
  });

  it('does not echo input in error messages', () => {
    const result = decode({ ...VALID.publish, class: '<script>alert(1)</script>' });
    assert.ok(!result.ok);
    if (!result.ok) assert.doesNotMatch(result.error.message, /script/);
  });

  it('round-trips every valid frame through encodeFrame', () => {
    for (const op of OPS) assert.deepEqual(decodeClientFrame(encodeFrame(VALID[op])), { ok: true, frame: VALID[op] });
  });
});

describe('decodeClientFrame properties', () => {
  const codes = new Set<string>(Object.values(ErrorCode));

  function assertTyped(result: DecodeResult): void {
    assert.equal(typeof result.ok, 'boolean');
    if (result.ok) {
      assert.ok(OPS.includes(result.frame.op));
      return;
    }
    assert.ok(result.error instanceof NerveError);
    assert.ok(codes.has(result.error.code));
    if ('rid' in result) assert.ok(typeof result.rid === 'string' || typeof result.rid === 'number');
  }

  it('never throws and always returns a typed result for arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (text) => assertTyped(decodeClientFrame(text))),
      { numRuns: 500 },
    );
  });

  it('never throws and always returns a typed result for arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => assertTyped(decode(value))),
      { numRuns: 500 },
    );
  });

  it('never throws for frames that look almost right', () => {
    const frame = fc.record(
      {
        op: fc.oneof(fc.constantFrom(...OPS), fc.string()),
        rid: fc.oneof(fc.integer(), fc.string(), fc.jsonValue()),
        room: fc.oneof(fc.string(), fc.jsonValue()),
        data: fc.jsonValue(),
        since: fc.oneof(fc.record({ offset: fc.oneof(fc.integer(), fc.double()), epoch: fc.string() }), fc.jsonValue()),
        class: fc.oneof(fc.constantFrom('chat', 'ephemeral', 'signal'), fc.jsonValue()),
        kind: fc.oneof(fc.constantFrom('offer', 'answer'), fc.jsonValue()),
        v: fc.oneof(fc.integer(), fc.jsonValue()),
      },
      { requiredKeys: ['op'] },
    );
    fc.assert(
      fc.property(frame, (value) => {
        const result = decode(value);
        assertTyped(result);
        if (result.ok) {
          // A decoded frame carries only fields its schema knows.
          assert.deepEqual(decode(result.frame), result);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
