import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { BusEnvelope } from '../../src/bus/bus.js';
import { EnvelopeError, decodeEnvelope, encodeEnvelope } from '../../src/bus/envelope.js';

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
    assert.equal(reason(() => encodeEnvelope({ ...base, payload: 'a\uD800b' })), 'bad_utf8');
    assert.equal(reason(() => encodeEnvelope({ ...base, id: '\uDC00' })), 'bad_utf8');
    assert.equal(reason(() => encodeEnvelope({ ...base, v: 2 })), 'unknown_version');
    assert.equal(reason(() => encodeEnvelope({ ...base, origin: 'x'.repeat(70_000) })), 'field_too_long');
  });

  it('rejects garbage with a typed reason', () => {
    const good = encodeEnvelope({ ...base, trace: 't' });
    assert.equal(reason(() => decodeEnvelope(Buffer.alloc(0))), 'truncated');
    assert.equal(reason(() => decodeEnvelope(Buffer.from('{"json":true}'))), 'unknown_version');
    const patch = (index: number, value: number): Buffer => {
      const copy = Buffer.from(good);
      copy[index] = value;
      return copy;
    };
    assert.equal(reason(() => decodeEnvelope(patch(0, 9))), 'unknown_version');
    assert.equal(reason(() => decodeEnvelope(patch(1, 7))), 'unknown_type');
    assert.equal(reason(() => decodeEnvelope(patch(2, 5))), 'unknown_class');
    assert.equal(reason(() => decodeEnvelope(patch(3, 0x80))), 'bad_flags');
    assert.equal(reason(() => decodeEnvelope(patch(4, 0xff))), 'truncated');
    assert.equal(reason(() => decodeEnvelope(good.subarray(0, 5))), 'truncated');
    // 0xC3 0x28 is an invalid two-byte UTF-8 sequence.
    assert.equal(reason(() => decodeEnvelope(Buffer.concat([encodeEnvelope({ ...base, payload: '' }), Buffer.from([0xc3, 0x28])]))), 'bad_utf8');
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
