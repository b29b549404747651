/**
 * The hand-written check of fast-events.ts must agree with the zod schemas of
 * events.ts: whatever it accepts, `parseEventWithSchema` accepts and decodes
 * to the same event. On generated events near valid `message.created` ones
 * (and of other types), as built in code and after a trip through JSON, and
 * on valid ones, which it must not leave to zod: that is its whole point.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { fastEvent } from '../../src/events/fast-events.js';
import { parseEvent, parseEventWithSchema } from '../../src/events/events.js';
import type { LifecycleEvent } from '../../src/events/event-log.js';

const count = fc.oneof(
  fc.integer({ min: -3, max: 1_000_000 }),
  fc.constantFrom(0, -0, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, -1),
  fc.constantFrom('1', null, undefined, true),
);
/** Strings around an id's bounds (1–128 characters), and things that are not strings. */
const id = fc.oneof(fc.string({ maxLength: 8 }), fc.string({ minLength: 126, maxLength: 130 }), fc.constantFrom('', 'e1', 1, null, undefined, ['x']));
/** Strings near an id pattern: its characters, others, and lengths around `max`. */
const patterned = (chars: string, max: number) =>
  fc.oneof(
    fc.string({ unit: fc.constantFrom(...chars), minLength: 1, maxLength: 8 }),
    fc.string({ unit: fc.constantFrom(...chars), minLength: max - 1, maxLength: max + 2 }),
    fc.string({ unit: fc.constantFrom(...chars, ':', ' ', '*', '\n', 'é'), maxLength: 8 }),
    fc.constantFrom('', 7, null, undefined),
  );
const roomChars = 'aZ09._~-';
const user = patterned(`${roomChars}@`, 128);
const body = fc.oneof(fc.jsonValue(), fc.constant(undefined));

/** Values that are objects to some and not to others. */
function oddObject(): fc.Arbitrary<unknown> {
  return fc
    .constantFrom<() => unknown>(
      () => [],
      () => null,
      () => new Date(0),
      () => Object.create(null) as object,
      () => new Map(),
      () => ({ constructor: {} }),
      () => ({ constructor: 'x' }),
      // An array posing as a message's data: z.record refuses arrays.
      () => Object.assign([], { constructor: Object, messageId: 'm', from: 'u', offset: 0, epoch: 'e1', sentAt: 0, body: 1 }),
      // A constructor without a prototype: z.record's isPlainObject refuses it.
      () => ({ constructor: () => 0, messageId: 'm', from: 'u', offset: 0, epoch: 'e1', sentAt: 0, body: 1 }),
    )
    .map((make) => make());
}

/** A valid value with one key taken from a near one (or dropped when the near one lacks it). */
function oneOff(valid: fc.Arbitrary<object>, near: fc.Arbitrary<object>, keys: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.tuple(valid, near, fc.constantFrom(...keys)).map(([good, bad, key]) => {
    const value: Record<string, unknown> = { ...good };
    if (key in bad) value[key] = (bad as Record<string, unknown>)[key];
    else delete value[key];
    return value;
  });
}

const validTarget = fc.record({ id: fc.uuid(), offset: fc.nat() }, { noNullPrototype: true });
const target = fc.oneof(
  fc.record({ id, offset: count, extra: fc.jsonValue() }, { requiredKeys: [] }),
  oneOff(validTarget, fc.record({ id, offset: count }, { requiredKeys: [] }), ['id', 'offset']),
  oddObject(),
);
const DATA_KEYS = ['messageId', 'from', 'offset', 'epoch', 'sentAt', 'body', 'cmid', 'action', 'target', 'extra'] as const;
const ENVELOPE_KEYS = ['v', 'id', 'type', 'ts', 'tenant', 'room', 'session', 'node', 'data', 'extra'] as const;
const nearData = fc.record(
  {
    messageId: id,
    from: user,
    offset: count,
    epoch: id,
    sentAt: count,
    body,
    cmid: id,
    action: fc.constantFrom('edit', 'delete', 'react', 'Edit', '', undefined, 1),
    target,
    extra: fc.jsonValue(),
    user,
  },
  { requiredKeys: [] },
);
const validData = fc.record(
  {
    messageId: fc.uuid(),
    from: fc.stringMatching(/^[A-Za-z0-9._~@-]{1,20}$/),
    offset: fc.nat(),
    epoch: fc.stringMatching(/^[a-z0-9]{1,12}$/),
    sentAt: fc.nat(),
    body: fc.jsonValue(),
    cmid: fc.string({ minLength: 1, maxLength: 64 }),
    action: fc.constantFrom('edit', 'delete', 'react'),
    target: validTarget,
    extra: fc.jsonValue(),
  },
  { requiredKeys: ['messageId', 'from', 'offset', 'epoch', 'sentAt', 'body'], noNullPrototype: true },
);

const nearEvent = fc.record(
  {
    v: fc.constantFrom(1, 2, '1', -0, undefined),
    id,
    type: fc.constantFrom('message.created', 'message.created', 'read.updated', 'room.created', 'message.deleted', undefined),
    ts: count,
    tenant: patterned(roomChars, 64),
    room: patterned(roomChars, 128),
    session: id,
    node: id,
    data: fc.oneof(nearData, validData, oneOff(validData, nearData, DATA_KEYS), oddObject()),
    extra: fc.jsonValue(),
  },
  { requiredKeys: [] },
);
// Events with every field well formed: nearEvent almost never makes one.
const validEvent = fc.record(
  {
    v: fc.constant(1),
    id: fc.uuid(),
    type: fc.constant('message.created'),
    ts: fc.nat(),
    tenant: fc.stringMatching(/^[A-Za-z0-9._~-]{1,64}$/),
    room: fc.stringMatching(/^[A-Za-z0-9._~-]{1,128}$/),
    session: fc.uuid(),
    node: fc.string({ minLength: 1, maxLength: 128 }),
    data: validData,
  },
  { noNullPrototype: true },
);

/** A valid event around `data`. */
const withData = (data: fc.Arbitrary<unknown>) => fc.tuple(validEvent, data).map(([event, value]) => ({ ...event, data: value }));
/** Valid events with one field off, at the top or in `data`, or odd `data`. */
const oneFieldOff = fc.oneof(
  oneOff(validEvent, nearEvent, ENVELOPE_KEYS),
  withData(oneOff(validData, nearData, DATA_KEYS)),
  withData(oneOff(validData, fc.record({ target }), ['target'])),
  withData(oddObject()),
);

/** `parseEventWithSchema`'s event, or `undefined` when it throws. */
function bySchema(value: unknown): LifecycleEvent | undefined {
  try {
    return parseEventWithSchema(value);
  } catch {
    return undefined;
  }
}

/** Checks one value, as built (fast-check makes some objects without a prototype) and after a trip through JSON; how many of the two took the fast path. */
function agrees(event: unknown): number {
  let took = 0;
  for (const value of [event, JSON.parse(JSON.stringify(event)) as unknown]) {
    const fast = fastEvent(value);
    if (fast === undefined) continue;
    const slow = bySchema(value);
    assert.ok(slow !== undefined, `fast path accepted what zod refuses: ${JSON.stringify(value)}`);
    assert.deepStrictEqual(fast, slow);
    took += 1;
  }
  return took;
}

describe('fast event check', () => {
  it('accepts only what zod accepts, and decodes it the same', () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.oneof(nearEvent, oneFieldOff), (event) => {
        accepted += agrees(event);
      }),
      { numRuns: 5000 },
    );
    assert.ok(accepted > 0, 'some generated events took the fast path');
  });

  it('takes the fast path for every valid message.created event', () => {
    fc.assert(
      fc.property(validEvent, (event) => {
        assert.equal(agrees(event), 2, JSON.stringify(event));
      }),
      { numRuns: 2000 },
    );
  });

  it('strips envelope keys and keeps data keys, as zod does', () => {
    const event = {
      v: 1,
      id: 'e',
      type: 'message.created',
      ts: 1,
      tenant: 't',
      room: 'r',
      session: 's',
      node: 'n',
      stamped: true,
      data: { messageId: 'm', from: 'u@x', offset: 0, epoch: 'e1', sentAt: 2, body: undefined, cmid: undefined, note: [1] },
    };
    const fast = fastEvent(event);
    assert.deepStrictEqual(fast, parseEventWithSchema(event));
    assert.equal('stamped' in fast, false);
    assert.notEqual(fast.data, event.data, 'data is copied, as z.record copies it');
  });

  it('leaves other types and odd values to zod', () => {
    const valid = { v: 1, id: 'e', type: 'message.created', ts: 1, tenant: 't', room: 'r', session: 's', node: 'n' };
    const data = { messageId: 'm', from: 'u', offset: 0, epoch: 'e1', sentAt: 2, body: 'hi' };
    assert.notEqual(fastEvent({ ...valid, data }), undefined);
    assert.equal(fastEvent({ ...valid, type: 'read.updated', data: { user: 'u', offset: 1, epoch: 'e1' } }), undefined);
    const { body: _body, ...withoutBody } = data;
    assert.equal(fastEvent({ ...valid, data: withoutBody }), undefined, 'body missing');
    assert.equal(fastEvent({ ...valid, session: undefined, data }), undefined, 'session missing');
    // JSON.parse makes `__proto__` an own key, which z.record drops.
    const proto = JSON.parse(`{"__proto__": 1, ${JSON.stringify(data).slice(1)}`) as object;
    assert.equal(fastEvent({ ...valid, data: proto }), undefined);
    assert.deepStrictEqual(parseEvent({ ...valid, data: proto }), parseEventWithSchema({ ...valid, data: proto }));
    assert.equal(fastEvent({ ...valid, data: { ...data, [Symbol('s')]: 1 } }), undefined);
  });
});
