/**
 * Wire codec for BusEnvelope: what the Redis drivers put on a channel.
 *
 * Binary rather than JSON because the payload is already an encoded client
 * frame: wrapping it in JSON would escape it a second time, and the receiving
 * node would have to re-encode it before handing the same bytes to every
 * local socket. Layout of version 1 (all integers big-endian):
 *
 *   u8  version        = 1 (BUS_ENVELOPE_VERSION)
 *   u8  type           0 deliver | 1 control | 2 canary
 *   u8  class          0 signal | 1 ephemeral | 2 chat | 3 lifecycle
 *   u8  flags          bit 0: trace present, bit 1: except present; other bits must be 0
 *   u16 + bytes        id (UTF-8)
 *   u16 + bytes        origin (UTF-8)
 *   [u16 + bytes]      trace, when flag bit 0
 *   [u16 + bytes]      except, when flag bit 1
 *   bytes              payload (UTF-8), to the end of the message
 *
 * Every string must be well-formed UTF-16 (no lone surrogates): UTF-8 cannot
 * carry a lone surrogate, so encoding one would silently replace it with
 * U+FFFD. `encode` refuses it instead; `decode` refuses malformed UTF-8.
 *
 * A future version 2 gets a new version byte; a node that does not know it
 * counts a decode error and drops the message (at-most-once lane), which is
 * why a rolling upgrade must deploy readers before writers.
 */
import type { MessageClass } from '../../packages/protocol/src/frames.js';
import { BUS_ENVELOPE_VERSION, type BusEnvelope } from './bus.js';

/** Machine reasons for a refused envelope; stable, for metrics labels. */
export type EnvelopeErrorReason =
  | 'truncated'
  | 'unknown_version'
  | 'unknown_type'
  | 'unknown_class'
  | 'bad_flags'
  | 'bad_utf8'
  | 'field_too_long';

/** Thrown by `encodeEnvelope` / `decodeEnvelope`. Callers count it and drop the message; it never crashes a node. */
export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';
  readonly code = 'bus_envelope_invalid';
  constructor(
    readonly reason: EnvelopeErrorReason,
    message: string,
  ) {
    super(message);
  }
}

const TYPES: readonly BusEnvelope['type'][] = ['deliver', 'control', 'canary'];
// Append only: the index is the wire value.
const CLASSES: readonly MessageClass[] = ['signal', 'ephemeral', 'chat', 'lifecycle', 'presence'];
const FLAG_TRACE = 1;
const FLAG_EXCEPT = 2;
const MAX_FIELD_BYTES = 0xffff;
const HEADER_BYTES = 4;

// A lone high surrogate, or a low surrogate not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function wellFormed(field: string, value: string): string {
  if (LONE_SURROGATE.test(value)) throw new EnvelopeError('bad_utf8', `envelope ${field} contains a lone surrogate`);
  return value;
}

/** Encode an envelope for the wire. Throws EnvelopeError for an envelope that could not round-trip. */
export function encodeEnvelope(envelope: BusEnvelope): Buffer {
  if (envelope.v !== BUS_ENVELOPE_VERSION) {
    throw new EnvelopeError('unknown_version', `cannot encode envelope version ${envelope.v}`);
  }
  const type = TYPES.indexOf(envelope.type);
  if (type < 0) throw new EnvelopeError('unknown_type', `unknown envelope type ${String(envelope.type)}`);
  const klass = CLASSES.indexOf(envelope.class);
  if (klass < 0) throw new EnvelopeError('unknown_class', `unknown message class ${String(envelope.class)}`);

  const fields: Buffer[] = [Buffer.from(wellFormed('id', envelope.id)), Buffer.from(wellFormed('origin', envelope.origin))];
  let flags = 0;
  if (envelope.trace !== undefined) {
    flags |= FLAG_TRACE;
    fields.push(Buffer.from(wellFormed('trace', envelope.trace)));
  }
  if (envelope.except !== undefined) {
    flags |= FLAG_EXCEPT;
    fields.push(Buffer.from(wellFormed('except', envelope.except)));
  }
  const payload = Buffer.from(wellFormed('payload', envelope.payload));

  let size = HEADER_BYTES + payload.length;
  for (const field of fields) {
    if (field.length > MAX_FIELD_BYTES) throw new EnvelopeError('field_too_long', `envelope field of ${field.length} bytes exceeds ${MAX_FIELD_BYTES}`);
    size += 2 + field.length;
  }
  const out = Buffer.allocUnsafe(size);
  out[0] = BUS_ENVELOPE_VERSION;
  out[1] = type;
  out[2] = klass;
  out[3] = flags;
  let at = HEADER_BYTES;
  for (const field of fields) {
    out.writeUInt16BE(field.length, at);
    at += 2;
    at += field.copy(out, at);
  }
  payload.copy(out, at);
  return out;
}

/** Decode and validate a wire envelope. Throws EnvelopeError for anything that is not a valid version-1 envelope. */
export function decodeEnvelope(bytes: Uint8Array): BusEnvelope {
  if (bytes.length < HEADER_BYTES) throw new EnvelopeError('truncated', `envelope of ${bytes.length} bytes is shorter than its header`);
  const version = bytes[0]!;
  if (version !== BUS_ENVELOPE_VERSION) throw new EnvelopeError('unknown_version', `unknown envelope version ${version}`);
  const type = TYPES[bytes[1]!];
  if (type === undefined) throw new EnvelopeError('unknown_type', `unknown envelope type code ${bytes[1]!}`);
  const klass = CLASSES[bytes[2]!];
  if (klass === undefined) throw new EnvelopeError('unknown_class', `unknown message class code ${bytes[2]!}`);
  const flags = bytes[3]!;
  if ((flags & ~(FLAG_TRACE | FLAG_EXCEPT)) !== 0) throw new EnvelopeError('bad_flags', `reserved envelope flags set: ${flags}`);

  let at = HEADER_BYTES;
  const text = (field: string, end: number): string => {
    try {
      return strictUtf8.decode(bytes.subarray(at, end));
    } catch {
      throw new EnvelopeError('bad_utf8', `envelope ${field} is not valid UTF-8`);
    }
  };
  const field = (name: string): string => {
    if (at + 2 > bytes.length) throw new EnvelopeError('truncated', `envelope ends before the length of ${name}`);
    const length = (bytes[at]! << 8) | bytes[at + 1]!;
    at += 2;
    if (at + length > bytes.length) throw new EnvelopeError('truncated', `envelope ends inside ${name}`);
    const value = text(name, at + length);
    at += length;
    return value;
  };

  const id = field('id');
  const origin = field('origin');
  const trace = flags & FLAG_TRACE ? field('trace') : undefined;
  const except = flags & FLAG_EXCEPT ? field('except') : undefined;
  const payload = text('payload', bytes.length);

  // Optional fields are absent, not `undefined`, so a decoded envelope deep-equals the one encoded.
  const envelope: BusEnvelope = { v: version, type, id, origin, class: klass, payload };
  if (trace !== undefined) envelope.trace = trace;
  if (except !== undefined) envelope.except = except;
  return envelope;
}
