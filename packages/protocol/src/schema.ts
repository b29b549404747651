/**
 * Runtime validation of client frames. Unknown fields are stripped, not
 * rejected: fields the server stamps (`from`, `id`, `offset`, `ts`, ...) are
 * ignored when a client sends them, and older servers tolerate newer clients.
 */
import { z } from 'zod';
import { CALL_ACTIONS, HISTORY_PAGE_LIMITS, SIGNAL_KINDS, type ClientFrame } from './frames.js';
import { isReactionEmoji, MAX_REACTION_LENGTH } from './actions.js';
import { MAX_ID_LENGTH } from './ids.js';

/**
 * The bounds the schemas below check, exported for the hand-written checks
 * of the hot frames (fast-frames.ts), which must agree with them.
 */
export const FRAME_BOUNDS = {
  /** Longest string request id (`rid`), and longest `cmid` / `key`. */
  maxToken: 64,
  /** Type and length cap of a room or user id field; the syntax is checked in the gateway (`invalid_room` / `invalid_user`). */
  maxIdField: 4 * MAX_ID_LENGTH,
  signalKinds: SIGNAL_KINDS,
  /** W3C Trace Context `traceparent`, version 00: version-traceid-parentid-flags in lower-case hex. */
  traceparent: /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/,
} as const;

const traceparent = z.string().regex(FRAME_BOUNDS.traceparent);

const requestId = z.union([z.string().min(1).max(FRAME_BOUNDS.maxToken), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)]);
// Room ids are checked here only for type and length cap; the syntax check
// happens in the gateway so it can answer `invalid_room` rather than `invalid_frame`.
const roomId = z.string().max(FRAME_BOUNDS.maxIdField);
// A JSON object (not an array or null); its size is checked in the gateway, so it can answer `presence_too_large`.
const presenceState = z.record(z.string(), z.unknown());
const position = z.object({
  offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  epoch: z.string().min(1).max(64),
});

export const connectSchema = z.object({
  op: z.literal('connect'),
  rid: requestId,
  v: z.number().int(),
  token: z.string().min(1).max(8192).optional(),
  user: z.string().max(FRAME_BOUNDS.maxIdField).optional(),
});

export const joinSchema = z.object({
  op: z.literal('join'),
  rid: requestId,
  room: roomId,
  since: position.optional(),
  history: z.number().int().min(0).max(1000).optional(),
  token: z.string().min(1).max(8192).optional(),
  state: presenceState.optional(),
});

export const leaveSchema = z.object({ op: z.literal('leave'), rid: requestId, room: roomId });

export const publishSchema = z.object({
  op: z.literal('publish'),
  rid: requestId,
  room: roomId,
  class: z.enum(['chat', 'ephemeral']),
  data: z.unknown().refine((value) => value !== undefined, 'data is required'),
  cmid: z.string().min(1).max(FRAME_BOUNDS.maxToken).optional(),
  key: z.string().min(1).max(FRAME_BOUNDS.maxToken).optional(),
  traceparent: traceparent.optional(),
});

export const signalSchema = z.object({
  op: z.literal('signal'),
  rid: requestId,
  to: z.string().max(FRAME_BOUNDS.maxIdField),
  kind: z.enum(FRAME_BOUNDS.signalKinds),
  data: z.unknown().refine((value) => value !== undefined, 'data is required'),
  traceparent: traceparent.optional(),
});

export const presenceSchema = z.object({ op: z.literal('presence'), rid: requestId, room: roomId });
export const presenceSetSchema = z.object({ op: z.literal('presence_set'), rid: requestId, room: roomId, state: presenceState });
export const pingSchema = z.object({ op: z.literal('ping'), rid: requestId });
export const refreshSchema = z.object({ op: z.literal('refresh'), rid: requestId, token: z.string().min(1).max(8192) });
export const historySchema = z.object({
  op: z.literal('history'),
  rid: requestId,
  room: roomId,
  // Offset 0 is "seen nothing": nothing lies below it, so a page before it is a client bug.
  before: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  limit: z.number().int().min(1).max(HISTORY_PAGE_LIMITS.max).optional(),
  epoch: position.shape.epoch.optional(),
});
export const callSchema = z.object({
  op: z.literal('call'),
  rid: requestId,
  room: roomId,
  // Syntax checked in the gateway, like room ids, so it can answer `invalid_call`.
  call: z.string().max(FRAME_BOUNDS.maxIdField),
  action: z.enum(CALL_ACTIONS),
});

// The lifecycle ops (actions.ts): the target by id and offset, as stored; the author and the right are checked in the gateway.
const target = z.object({
  id: z.string().min(1).max(128),
  offset: position.shape.offset.min(1),
  epoch: position.shape.epoch.optional(),
});
const actionFields = { rid: requestId, room: roomId, target, cmid: z.string().min(1).max(FRAME_BOUNDS.maxToken).optional() };
export const editSchema = z.object({
  op: z.literal('edit'),
  ...actionFields,
  data: z.unknown().refine((value) => value !== undefined, 'data is required'),
});
export const deleteSchema = z.object({ op: z.literal('delete'), ...actionFields });
export const reactSchema = z.object({
  op: z.literal('react'),
  ...actionFields,
  emoji: z.string().refine(isReactionEmoji, `1 to ${MAX_REACTION_LENGTH} UTF-16 code units`),
  on: z.boolean().optional(),
});

export const readSchema = z.object({
  op: z.literal('read'),
  rid: requestId,
  room: roomId,
  offset: position.shape.offset,
  epoch: position.shape.epoch.optional(),
});

export const clientFrameSchemas = {
  connect: connectSchema,
  join: joinSchema,
  leave: leaveSchema,
  publish: publishSchema,
  signal: signalSchema,
  presence: presenceSchema,
  presence_set: presenceSetSchema,
  ping: pingSchema,
  refresh: refreshSchema,
  history: historySchema,
  edit: editSchema,
  delete: deleteSchema,
  react: reactSchema,
  call: callSchema,
  read: readSchema,
} as const;

// Compile-time proof that the schemas and the documented frame types agree.
// `data` is `unknown` on both sides and zod infers it as an optional key, so it is left out.
type Inferred = { [K in keyof typeof clientFrameSchemas]: Omit<z.infer<(typeof clientFrameSchemas)[K]>, 'data'> };
type Documented = { [K in ClientFrame['op']]: Omit<Extract<ClientFrame, { op: K }>, 'data'> };
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemasMatchTypes: { [K in keyof Documented]: Same<Inferred[K], Documented[K]> } = {
  connect: true,
  join: true,
  leave: true,
  publish: true,
  signal: true,
  presence: true,
  presence_set: true,
  ping: true,
  refresh: true,
  history: true,
  edit: true,
  delete: true,
  react: true,
  call: true,
  read: true,
};
void schemasMatchTypes;

export { requestId as requestIdSchema };
