/**
 * Every BusEnvelope is built here (deliver, control, canary), control
 * commands are typed and parsed here, and this is the binary wire codec the
 * networked drivers put on a channel. Binary, not JSON: the payload is an
 * already encoded client frame, sent to every socket as it is. The layout
 * of version 1 is in docs/architecture.md ("The bus envelope").
 */
import { randomUUID } from 'node:crypto';
import { encodeFrame } from '../../packages/protocol/src/codec.js';
import type { ChatMessage, MessageClass } from '../../packages/protocol/src/frames.js';
import { BUS_ENVELOPE_VERSION, type BusEnvelope } from './bus.js';

/** Commands nodes send each other in `control` envelopes, on room and user channels. */
export type ControlCommand =
  /** The server API ended the room: every node's local members leave it (`room_ended`). */
  | { action: 'room.end'; room: string; reason: string }
  /** The admin API disconnects the user on every node; `conn` names one connection, absent: all of them. */
  | { action: 'user.disconnect'; user: string; reason: string; conn?: string }
  /** A signal was queued for the user: the node holding them takes the mailbox now. */
  | { action: 'mailbox.pending' }
  /** The Pusher HTTP API terminates the user's Pusher connections (src/pusher). */
  | { action: 'pusher.terminate' };

/** The class byte each command has always travelled with (a wire value; nothing reads it on receipt). */
const COMMAND_CLASS: Readonly<Record<ControlCommand['action'], MessageClass>> = {
  'room.end': 'lifecycle',
  'user.disconnect': 'lifecycle',
  'mailbox.pending': 'signal',
  'pusher.terminate': 'lifecycle',
};

// Commands without fields: one object and one payload each, so neither sending nor receiving them allocates.
const MAILBOX_PENDING_COMMAND: ControlCommand = { action: 'mailbox.pending' };
const PUSHER_TERMINATE_COMMAND: ControlCommand = { action: 'pusher.terminate' };
const MAILBOX_PENDING = JSON.stringify(MAILBOX_PENDING_COMMAND);
const PUSHER_TERMINATE = JSON.stringify(PUSHER_TERMINATE_COMMAND);

/** A `deliver` envelope: `payload`, an encoded client frame, for every local recipient of the channel but `except`. */
export function deliverEnvelope(origin: string, messageClass: MessageClass, id: string, payload: string, except?: string, trace?: string): BusEnvelope {
  const envelope: BusEnvelope = { v: BUS_ENVELOPE_VERSION, type: 'deliver', id, origin, class: messageClass, payload };
  // Optional fields are absent rather than `undefined`, as decodeEnvelope makes them.
  if (trace !== undefined) envelope.trace = trace;
  if (except !== undefined) envelope.except = except;
  return envelope;
}

/**
 * The envelope a stored chat message travels in, whoever stored it (a node
 * or the chat-store worker), so receivers cannot tell the paths apart;
 * `trace`: the context of the history write.
 */
export function chatEnvelope(message: ChatMessage, origin: string, trace?: string): BusEnvelope {
  return deliverEnvelope(origin, 'chat', message.id, encodeFrame(message), undefined, trace);
}

/** A `control` envelope carrying `command` as JSON. */
export function controlEnvelope(origin: string, command: ControlCommand): BusEnvelope {
  const payload = command.action === 'mailbox.pending' ? MAILBOX_PENDING : command.action === 'pusher.terminate' ? PUSHER_TERMINATE : JSON.stringify(command);
  return { v: BUS_ENVELOPE_VERSION, type: 'control', id: randomUUID(), origin, class: COMMAND_CLASS[command.action], payload };
}

/** A canary probe: an empty envelope a node publishes to itself (src/bus/canary.ts). */
export function canaryEnvelope(origin: string, id: string): BusEnvelope {
  return { v: BUS_ENVELOPE_VERSION, type: 'canary', id, origin, class: 'ephemeral', payload: '' };
}

/** The command a control payload carries, or undefined for anything malformed or unknown (ignored: the lane is at most once). */
export function parseControl(payload: string): ControlCommand | undefined {
  if (payload === MAILBOX_PENDING) return MAILBOX_PENDING_COMMAND;
  if (payload === PUSHER_TERMINATE) return PUSHER_TERMINATE_COMMAND;
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const fields = value as Record<string, unknown>;
  const { action, reason } = fields;
  if (action === 'room.end') {
    const room = fields['room'];
    return typeof room === 'string' && typeof reason === 'string' ? { action, room, reason } : undefined;
  }
  if (action === 'user.disconnect') {
    const { user, conn } = fields;
    if (typeof user !== 'string' || typeof reason !== 'string') return undefined;
    return typeof conn === 'string' ? { action, user, reason, conn } : { action, user, reason };
  }
  if (action === 'mailbox.pending') return MAILBOX_PENDING_COMMAND;
  if (action === 'pusher.terminate') return PUSHER_TERMINATE_COMMAND;
  return undefined;
}

/** Machine reasons for a refused envelope; stable, for metrics labels. */
export type EnvelopeErrorReason = 'truncated' | 'unknown_version' | 'unknown_type' | 'unknown_class' | 'bad_flags' | 'bad_utf8' | 'field_too_long';

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
  // Encoded straight into the envelope (one copy, not Buffer.from's and then another): it is the bulk of the bytes.
  const payload = wellFormed('payload', envelope.payload);
  const payloadBytes = Buffer.byteLength(payload);

  let size = HEADER_BYTES + payloadBytes;
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
  out.write(payload, at, payloadBytes, 'utf8');
  return out;
}

/**
 * Where decodeEnvelope reads its next field. Module state rather than
 * closures made per call: decoding runs once per bus message and is
 * synchronous, so nothing else can move it meanwhile.
 */
let fieldAt = 0;

function utf8(bytes: Uint8Array, start: number, end: number, field: string): string {
  try {
    return strictUtf8.decode(bytes.subarray(start, end));
  } catch {
    throw new EnvelopeError('bad_utf8', `envelope ${field} is not valid UTF-8`);
  }
}

/** The length-prefixed field at `fieldAt`; moves `fieldAt` past it. */
function readField(bytes: Uint8Array, name: string): string {
  const at = fieldAt;
  if (at + 2 > bytes.length) throw new EnvelopeError('truncated', `envelope ends before the length of ${name}`);
  const length = (bytes[at]! << 8) | bytes[at + 1]!;
  if (at + 2 + length > bytes.length) throw new EnvelopeError('truncated', `envelope ends inside ${name}`);
  fieldAt = at + 2 + length;
  return utf8(bytes, at + 2, at + 2 + length, name);
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

  fieldAt = HEADER_BYTES;
  const id = readField(bytes, 'id');
  const origin = readField(bytes, 'origin');
  const trace = flags & FLAG_TRACE ? readField(bytes, 'trace') : undefined;
  const except = flags & FLAG_EXCEPT ? readField(bytes, 'except') : undefined;
  const payload = utf8(bytes, fieldAt, bytes.length, 'payload');

  // Optional fields are absent, not `undefined`, so a decoded envelope deep-equals the one encoded.
  const envelope: BusEnvelope = { v: version, type, id, origin, class: klass, payload };
  if (trace !== undefined) envelope.trace = trace;
  if (except !== undefined) envelope.except = except;
  return envelope;
}
