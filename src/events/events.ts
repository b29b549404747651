/**
 * The lifecycle events of the cold lane: one constructor and one validator per
 * type, documented with examples in docs/events.md. Events are versioned JSON
 * (`v`); a consumer validates with `parseEvent` and reads typed data with
 * `eventData`. Adding an optional data field is compatible; anything else
 * needs a new `v`.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { EVENT_TYPES, EVENT_VERSION, type AdminEventType, type EventType, type LifecycleEvent } from './event-log.js';
import { EVENT_BOUNDS } from './event-bounds.js';
import { fastEvent } from './fast-events.js';
import { ROOM_ID_PATTERN, TENANT_ID_PATTERN, USER_ID_PATTERN } from '../../packages/protocol/src/ids.js';

/** Thrown by `parseEvent` / `eventData`; `issue` is the first failing field path. */
class InvalidEventError extends Error {
  override readonly name = 'InvalidEventError';
  readonly code = 'invalid_event';
  constructor(
    readonly issue: string,
    options?: { cause?: unknown },
  ) {
    super(`invalid event: ${issue}`, options);
  }
}

/** Why a participant left a room. `node_crash`: the node holding the connection died (presence TTL expired). */
export type LeaveReason = 'left' | 'disconnected' | 'kicked' | 'room_ended' | 'node_crash' | 'join_failed';

export interface ParticipantTime {
  user: string;
  /** Milliseconds the user was in this room session (all connections merged). */
  ms: number;
}

/** `data` of each event type. */
export interface EventDataMap {
  'room.created': { createdBy?: string };
  'room.ended': {
    /** ms since epoch when the session started (its room.created). */
    startedAt: number;
    /** Wall time of the session, ms. */
    durationMs: number;
    /** Everyone who was in the session, with their time in it. */
    participants: ParticipantTime[];
    /** Peak number of simultaneous participants, when the node knows it. */
    peakParticipants?: number;
    reason?: 'empty' | 'api' | 'timeout';
  };
  'participant.joined': { user: string; conn?: string };
  'participant.left': { user: string; conn?: string; reason: LeaveReason; ms?: number };
  'message.created': {
    /** Server-assigned message id (the `id` of the chat frame); chat-store is idempotent on it. */
    messageId: string;
    from: string;
    /** Room log offset and epoch of the message. */
    offset: number;
    epoch: string;
    /** Server time of the message, ms since epoch. */
    sentAt: number;
    /** The message payload, any JSON value. */
    body: unknown;
    cmid?: string;
    /** An edit, delete or reaction entry (docs/protocol.md, "Editing, deleting and reacting"): what it does, and to which message. */
    action?: 'edit' | 'delete' | 'react';
    target?: { id: string; offset: number };
  };
  'recording.requested': { by: string; action: 'start' | 'stop' };
  /** A call of the room got its first participant (the `call` op, src/calls/). */
  'call.started': {
    /** The call's id in the room, chosen by the clients. */
    call: string;
    /** This life of the call, from its call.started to its call.ended (a UUID). */
    callSession: string;
    /** Server time of the first join, ms since epoch. */
    startedAt: number;
    /** The user whose join started it. */
    startedBy: string;
  };
  /** A call of the room lost its last participant: timed by the server, for billing per minute. */
  'call.ended': {
    call: string;
    callSession: string;
    startedAt: number;
    /** Server time of the last leave, or the last-seen time of the last participants when their node died. */
    endedAt: number;
    /** `endedAt - startedAt`. */
    ms: number;
    /** Every user who was in the call, with their time in it (connections merged). */
    participants: ParticipantTime[];
    /** Most users in the call at once. */
    peakParticipants: number;
    /** Why the last participant left. */
    reason: LeaveReason;
  };
  /** A user's read position in the room moved forward (the `read` op; at most one per user, room and node per 500 ms, the latest). */
  'read.updated': {
    user: string;
    /** The chat offset read up to, in `epoch` of the room log. */
    offset: number;
    epoch: string;
  };
  /**
   * One node's usage by one tenant over one interval (src/usage/meter.ts);
   * the event id is derived from node, tenant and `from`, so a node emits
   * each interval once, across restarts too (docs/events.md).
   */
  'usage.reported': {
    /** Interval start and end, ms since epoch (`to - from` is the interval, shorter for the last one before a stop). */
    from: number;
    to: number;
    /** Milliseconds of open connections summed over connections (connection-minutes × 60000). */
    connectionMs: number;
    /** Room messages published (chat and ephemeral). */
    messages: number;
    /** Frames written to this node's sockets for the tenant: room messages, signals, presence changes (as nerve_deliveries_total). */
    deliveries: number;
    /** Direct signals sent. */
    signals: number;
    /** Bytes of chat stored (message `data` as JSON). */
    storedBytes: number;
  };
  /**
   * One Pusher webhook event of a Pusher app (docs/pusher.md, "Webhooks"), in
   * Pusher's own field names; the `pusher-webhooks` worker batches and signs
   * them. `channel` is the Pusher channel (not a room id: it may hold `= @ , ;`).
   */
  'pusher.webhook': {
    app: string;
    name: 'channel_occupied' | 'channel_vacated' | 'member_added' | 'member_removed' | 'client_event';
    channel: string;
    user_id?: string;
    event?: string;
    data?: string;
    socket_id?: string;
  };
  /** An operator disconnects a user (every connection) or one connection of it. */
  'admin.disconnect': AdminActor & { user: string; conn?: string; reason: string };
  /** An operator ends a room (the event's `room`). */
  'admin.end_room': AdminActor & { reason: string };
  /** An operator publishes into a room (the event's `room`); the message itself is in its `message.created`. */
  'admin.publish': AdminActor & { class: 'chat' | 'ephemeral'; from: string; bytes: number };
  /** An operator sets a tenant's quotas (`quota`: the new values; absent fields have no limit). */
  'admin.set_quotas': AdminActor & { quota: Record<string, number> };
}

/** Who acted: the name of the operator key (never the key); the envelope's `node` took the request. */
export interface AdminActor {
  actor: string;
}

const user = z.string().regex(USER_ID_PATTERN);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const id = z.string().min(1).max(EVENT_BOUNDS.maxId);
const callId = z.string().regex(ROOM_ID_PATTERN);
const leaveReason = z.enum(['left', 'disconnected', 'kicked', 'room_ended', 'node_crash', 'join_failed']);

const dataSchemas: { [T in EventType]: z.ZodType<EventDataMap[T]> } = {
  'room.created': z.object({ createdBy: user.optional() }),
  'room.ended': z.object({
    startedAt: count,
    durationMs: count,
    participants: z.array(z.object({ user, ms: count })).max(100_000),
    peakParticipants: count.optional(),
    reason: z.enum(['empty', 'api', 'timeout']).optional(),
  }),
  'participant.joined': z.object({ user, conn: id.optional() }),
  'participant.left': z.object({
    user,
    conn: id.optional(),
    reason: leaveReason,
    ms: count.optional(),
  }),
  'message.created': z.object({
    messageId: id,
    from: user,
    offset: count,
    epoch: id,
    sentAt: count,
    body: z.unknown(),
    cmid: id.optional(),
    action: z.enum(EVENT_BOUNDS.messageActions).optional(),
    target: z.object({ id, offset: count }).optional(),
  }),
  'recording.requested': z.object({ by: user, action: z.enum(['start', 'stop']) }),
  'call.started': z.object({ call: callId, callSession: id, startedAt: count, startedBy: user }),
  'call.ended': z.object({
    call: callId,
    callSession: id,
    startedAt: count,
    endedAt: count,
    ms: count,
    participants: z.array(z.object({ user, ms: count })).max(100_000),
    peakParticipants: count,
    reason: leaveReason,
  }),
  'read.updated': z.object({ user, offset: count, epoch: id }),
  'usage.reported': z.object({ from: count, to: count, connectionMs: count, messages: count, deliveries: count, signals: count, storedBytes: count }),
  'pusher.webhook': z.object({
    app: z.string().min(1).max(64),
    name: z.enum(['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event']),
    channel: z.string().min(1).max(164),
    user_id: z.string().min(1).max(128).optional(),
    event: z.string().min(1).max(200).optional(),
    data: z.string().max(1_048_576).optional(),
    socket_id: z.string().max(64).optional(),
  }),
  'admin.disconnect': z.object({ actor: id, user, conn: id.optional(), reason: z.string().max(200) }),
  'admin.end_room': z.object({ actor: id, reason: z.string().max(200) }),
  'admin.publish': z.object({ actor: id, class: z.enum(['chat', 'ephemeral']), from: user, bytes: count }),
  'admin.set_quotas': z.object({ actor: id, quota: z.record(z.string(), count) }),
};

const envelopeSchema = z.object({
  v: z.literal(EVENT_VERSION),
  id,
  type: z.enum(EVENT_TYPES),
  ts: count,
  tenant: z.string().regex(TENANT_ID_PATTERN),
  room: z.string().regex(ROOM_ID_PATTERN).optional(),
  session: id.optional(),
  node: id,
  data: z.record(z.string(), z.unknown()),
});

/** Events that concern a room must name it and its session. */
const ROOM_EVENTS: ReadonlySet<EventType> = new Set(
  EVENT_TYPES.filter((type) => type !== 'usage.reported' && type !== 'pusher.webhook' && !type.startsWith('admin.')),
);

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.map(String).join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** Validate an envelope and its data. Throws `InvalidEventError`. */
export function parseEvent(value: unknown): LifecycleEvent {
  return fastEvent(value) ?? parseEventWithSchema(value);
}

/** `parseEvent` by the zod schemas alone, which decide whatever fast-events.ts leaves to them. */
export function parseEventWithSchema(value: unknown): LifecycleEvent {
  const result = envelopeSchema.safeParse(value);
  if (!result.success) throw new InvalidEventError(firstIssue(result.error));
  const event = result.data;
  if (ROOM_EVENTS.has(event.type) && (event.room === undefined || event.session === undefined)) {
    throw new InvalidEventError(`${event.type} needs room and session`);
  }
  const data = dataSchemas[event.type].safeParse(event.data);
  if (!data.success) throw new InvalidEventError(`data.${firstIssue(data.error)}`);
  return event;
}

export function isValidEvent(value: unknown): value is LifecycleEvent {
  try {
    parseEvent(value);
    return true;
  } catch {
    return false;
  }
}

/** Typed data of an event already known to be of type `T` (validated again; cheap). */
export function eventData<T extends EventType>(event: LifecycleEvent, type: T): EventDataMap[T] {
  if (event.type !== type) throw new InvalidEventError(`expected ${type}, got ${event.type}`);
  const result = dataSchemas[type].safeParse(event.data);
  if (!result.success) throw new InvalidEventError(`data.${firstIssue(result.error)}`);
  return result.data;
}

/** What the emitting node knows about where an event happened. */
export interface EventSource {
  tenant: string;
  room: string;
  /** The room session (one life of the room, room.created → room.ended). */
  session: string;
  /** Emitting node id. */
  node: string;
  /** Default: a random UUID. Pass a stable id to make re-emission idempotent. */
  id?: string;
  /** Default: now. */
  ts?: number;
}

/** Build and validate an event of type `type`. Throws `InvalidEventError` on bad input. */
export function createEvent<T extends EventType>(type: T, source: EventSource, data: EventDataMap[T]): LifecycleEvent<T> {
  const event = {
    v: EVENT_VERSION,
    id: source.id ?? randomUUID(),
    type,
    ts: source.ts ?? Date.now(),
    tenant: source.tenant,
    room: source.room,
    session: source.session,
    node: source.node,
    data: data as Record<string, unknown>,
  };
  parseEvent(event);
  return event;
}

export const roomCreated = (source: EventSource, data: EventDataMap['room.created'] = {}) => createEvent('room.created', source, data);
export const roomEnded = (source: EventSource, data: EventDataMap['room.ended']) => createEvent('room.ended', source, data);
export const participantJoined = (source: EventSource, data: EventDataMap['participant.joined']) => createEvent('participant.joined', source, data);
export const participantLeft = (source: EventSource, data: EventDataMap['participant.left']) => createEvent('participant.left', source, data);
export const callStarted = (source: EventSource, data: EventDataMap['call.started']) => createEvent('call.started', source, data);
export const callEnded = (source: EventSource, data: EventDataMap['call.ended']) => createEvent('call.ended', source, data);
export const readUpdated = (source: EventSource, data: EventDataMap['read.updated']) => createEvent('read.updated', source, data);
export const messageCreated = (source: EventSource, data: EventDataMap['message.created']) => createEvent('message.created', source, data);
/** A node's usage by one tenant over one interval (no room: usage is per tenant). */
export function usageReported(
  source: { tenant: string; node: string; id: string; ts?: number },
  data: EventDataMap['usage.reported'],
): LifecycleEvent<'usage.reported'> {
  const event = {
    v: EVENT_VERSION,
    id: source.id,
    type: 'usage.reported' as const,
    ts: source.ts ?? Date.now(),
    tenant: source.tenant,
    node: source.node,
    data: data as unknown as Record<string, unknown>,
  };
  parseEvent(event);
  return event;
}
/** An admin audit event: the tenant acted on, the room when the action concerns one (no session: it is not a room's life). */
export function adminEvent<T extends AdminEventType>(
  type: T,
  source: { tenant: string; room?: string; node: string },
  data: EventDataMap[T],
): LifecycleEvent<T> {
  const event = {
    v: EVENT_VERSION,
    id: randomUUID(),
    type,
    ts: Date.now(),
    tenant: source.tenant,
    ...(source.room === undefined ? {} : { room: source.room }),
    node: source.node,
    data: data as unknown as Record<string, unknown>,
  };
  parseEvent(event);
  return event;
}
