import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { BusEnvelope } from '../../src/bus/bus.js';
import {
  EnvelopeError,
  canaryEnvelope,
  chatEnvelope,
  controlEnvelope,
  decodeEnvelope,
  deliverEnvelope,
  encodeEnvelope,
  parseControl,
  type ControlCommand,
} from '../../src/bus/envelope.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';

const base: BusEnvelope = { v: 1, type: 'deliver', id: 'e1', origin: 'node-a', class: 'chat', payload: '{"op":"message"}' };

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof EnvelopeError, `expected EnvelopeError, got ${String(error)}`);
    assert.equal(error.code, 'bus_envelope_invalid');
    return error.reason;
  }
  assert.fail('expected a throw');
}

describe('bus envelope codec', () => {
  it('round-trips with optional fields absent and present', () => {
    assert.deepEqual(decodeEnvelope(encodeEnvelope(base)), base);
    const full: BusEnvelope = { ...base, type: 'control', class: 'signal', trace: 'trace-1', except: 'conn-9' };
    assert.deepEqual(decodeEnvelope(encodeEnvelope(full)), full);
    const decoded = decodeEnvelope(encodeEnvelope(base));
    assert.equal('trace' in decoded, false);
    assert.equal('except' in decoded, false);
    const emptyStrings: BusEnvelope = { ...base, id: '', origin: '', trace: '', except: '', payload: '' };
    assert.deepEqual(decodeEnvelope(encodeEnvelope(emptyStrings)), emptyStrings);
  });

  it('carries unicode and control characters in every field', () => {
    const weird: BusEnvelope = {
      ...base,
      id: 'é中🎉',
      origin: 'n\u0000de',
      trace: '\r\n\t',
      except: '\u{10FFFF}',
      payload: '\u0000\u0001\u00ff\ufeff🎉 "quoted" \\ \n'.repeat(100),
    };
    assert.deepEqual(decodeEnvelope(encodeEnvelope(weird)), weird);
  });

  it('refuses what cannot round-trip', () => {
    assert.equal(
      reason(() => encodeEnvelope({ ...base, payload: 'a\uD800b' })),
      'bad_utf8',
    );
    assert.equal(
      reason(() => encodeEnvelope({ ...base, id: '\uDC00' })),
      'bad_utf8',
    );
    assert.equal(
      reason(() => encodeEnvelope({ ...base, v: 2 })),
      'unknown_version',
    );
    assert.equal(
      reason(() => encodeEnvelope({ ...base, origin: 'x'.repeat(70_000) })),
      'field_too_long',
    );
  });

  it('rejects garbage with a typed reason', () => {
    const good = encodeEnvelope({ ...base, trace: 't' });
    assert.equal(
      reason(() => decodeEnvelope(Buffer.alloc(0))),
      'truncated',
    );
    assert.equal(
      reason(() => decodeEnvelope(Buffer.from('{"json":true}'))),
      'unknown_version',
    );
    const patch = (index: number, value: number): Buffer => {
      const copy = Buffer.from(good);
      copy[index] = value;
      return copy;
    };
    assert.equal(
      reason(() => decodeEnvelope(patch(0, 9))),
      'unknown_version',
    );
    assert.equal(
      reason(() => decodeEnvelope(patch(1, 7))),
      'unknown_type',
    );
    assert.equal(
      reason(() => decodeEnvelope(patch(2, 5))),
      'unknown_class',
    );
    assert.equal(
      reason(() => decodeEnvelope(patch(3, 0x80))),
      'bad_flags',
    );
    assert.equal(
      reason(() => decodeEnvelope(patch(4, 0xff))),
      'truncated',
    );
    assert.equal(
      reason(() => decodeEnvelope(good.subarray(0, 5))),
      'truncated',
    );
    // 0xC3 0x28 is an invalid two-byte UTF-8 sequence.
    assert.equal(
      reason(() => decodeEnvelope(Buffer.concat([encodeEnvelope({ ...base, payload: '' }), Buffer.from([0xc3, 0x28])]))),
      'bad_utf8',
    );
  });

  it('property: encode then decode is the identity', () => {
    const text = fc.string({ unit: 'binary', maxLength: 40 });
    const envelope = fc.record(
      {
        v: fc.constant(1),
        type: fc.constantFrom('deliver' as const, 'control' as const, 'canary' as const),
        id: text,
        origin: text,
        trace: text,
        class: fc.constantFrom('signal' as const, 'ephemeral' as const, 'chat' as const, 'lifecycle' as const, 'presence' as const),
        except: text,
        payload: fc.string({ unit: 'binary', maxLength: 500 }),
      },
      { requiredKeys: ['v', 'type', 'id', 'origin', 'class', 'payload'] },
    );
    fc.assert(
      fc.property(envelope, (generated) => {
        // fast-check builds null-prototype records; compare plain objects.
        const value: BusEnvelope = { ...generated };
        assert.deepEqual(decodeEnvelope(encodeEnvelope(value)), value);
      }),
      { numRuns: 500 },
    );
  });

  it('property: arbitrary bytes either decode or throw EnvelopeError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeEnvelope(bytes);
        } catch (error) {
          assert.ok(error instanceof EnvelopeError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('bus envelope builders and control commands', () => {
  it('builds deliver envelopes with optional fields absent, as decoded', () => {
    const plain = deliverEnvelope('n1', 'ephemeral', 'id-1', '{"op":"message"}');
    assert.deepEqual(plain, { v: 1, type: 'deliver', id: 'id-1', origin: 'n1', class: 'ephemeral', payload: '{"op":"message"}' });
    assert.deepEqual(decodeEnvelope(encodeEnvelope(plain)), plain);
    const full = deliverEnvelope('n1', 'signal', 'id-2', 'p', 'conn-1', '00-trace');
    assert.equal(full.except, 'conn-1');
    assert.equal(full.trace, '00-trace');
    assert.deepEqual(decodeEnvelope(encodeEnvelope(full)), full);
  });

  it('puts a stored chat message in a deliver envelope under its own id', () => {
    const message: ChatMessage = { op: 'message', class: 'chat', room: 'r', id: 'm1', from: 'u', ts: 1, data: 'hi', offset: 3, epoch: 'e' };
    const envelope = chatEnvelope(message, 'n2', 'tp');
    assert.equal(envelope.id, 'm1');
    assert.equal(envelope.class, 'chat');
    assert.equal(envelope.trace, 'tp');
    assert.deepEqual(JSON.parse(envelope.payload), message);
    assert.equal('trace' in chatEnvelope(message, 'n2'), false);
  });

  it('keeps the wire of every control command: payload JSON and class byte', () => {
    const cases: Array<[ControlCommand, string, string]> = [
      [{ action: 'room.end', room: 'r1', reason: 'done' }, '{"action":"room.end","room":"r1","reason":"done"}', 'lifecycle'],
      [
        { action: 'user.disconnect', user: 'u1', reason: 'bye', conn: 'c1' },
        '{"action":"user.disconnect","user":"u1","reason":"bye","conn":"c1"}',
        'lifecycle',
      ],
      [{ action: 'mailbox.pending' }, '{"action":"mailbox.pending"}', 'signal'],
      [{ action: 'pusher.terminate' }, '{"action":"pusher.terminate"}', 'lifecycle'],
    ];
    for (const [command, payload, klass] of cases) {
      const envelope = controlEnvelope('n1', command);
      assert.equal(envelope.type, 'control');
      assert.equal(envelope.payload, payload);
      assert.equal(envelope.class, klass);
      assert.deepEqual(parseControl(envelope.payload), command);
    }
    assert.notEqual(controlEnvelope('n1', { action: 'mailbox.pending' }).id, controlEnvelope('n1', { action: 'mailbox.pending' }).id);
  });

  it('parses malformed or unknown commands as nothing', () => {
    for (const payload of [
      '',
      'null',
      '5',
      '"room.end"',
      '{',
      '{"action":"room.end","room":1,"reason":"x"}',
      '{"action":"user.disconnect","user":"u"}',
      '{"action":"toString"}',
      '{"action":"__proto__"}',
      '{"action":"other"}',
    ]) {
      assert.equal(parseControl(payload), undefined, payload);
    }
    assert.deepEqual(parseControl('{"action":"user.disconnect","user":"u","reason":"r","conn":7}'), { action: 'user.disconnect', user: 'u', reason: 'r' });
  });

  it('builds canary probes', () => {
    const canary = canaryEnvelope('n1', 'probe-1');
    assert.deepEqual(decodeEnvelope(encodeEnvelope(canary)), { v: 1, type: 'canary', id: 'probe-1', origin: 'n1', class: 'ephemeral', payload: '' });
  });
});
