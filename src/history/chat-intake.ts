/**
 * The chat intake of `--bus rabbitmq --chat-path worker`: what a node and the
 * chat-store worker agree on (names, arguments, the request and reply bodies).
 * Topology and guarantees: docs/architecture.md, "The chat intake". Requests
 * carry an `expiration` equal to the node's reply timeout, so one nobody took
 * in time is dead-lettered instead of stored long after its sender was told.
 */
import { z } from 'zod';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import type { ChatMessage } from '../../packages/protocol/src/frames.js';
import type { AppendResult, ChatDraft, RoomRef } from './history.js';

const CHAT_INTAKE_VERSION = 1;
/** Routing key of requests on the incoming exchange. */
export const CHAT_INTAKE_ROUTING_KEY = 'chat.append';

export interface ChatIntakeNames {
  exchange: string;
  queue: string;
  deadLetterExchange: string;
  deadLetterQueue: string;
}

export function chatIntakeNames(env: string, service: string): ChatIntakeNames {
  const base = `${env}.${service}.chat`;
  return { exchange: `${base}.incoming`, queue: `${base}.incoming`, deadLetterExchange: `${base}.dlx`, deadLetterQueue: `${base}.incoming.dlq` };
}

/**
 * The incoming queue's declaration. Node and worker both declare it, with
 * these exact arguments (RabbitMQ refuses a redeclaration that differs), so a
 * request is never unroutable because the worker has not started yet.
 */
export function intakeQueueDeclaration(names: ChatIntakeNames) {
  return {
    queue: names.queue,
    durable: true,
    arguments: {
      'x-single-active-consumer': true,
      'x-dead-letter-exchange': names.deadLetterExchange,
      'x-dead-letter-routing-key': names.deadLetterQueue,
    },
  };
}

/** Where failed and expired requests wait for an operator. */
export function deadLetterQueueDeclaration(names: ChatIntakeNames) {
  return { queue: names.deadLetterQueue, durable: true };
}

/** The broker objects of the intake, for a `Connection` or consumer to declare. */
export function intakeTopology(names: ChatIntakeNames) {
  return {
    exchanges: [
      { exchange: names.exchange, type: 'direct' as const, durable: true },
      { exchange: names.deadLetterExchange, type: 'direct' as const, durable: true },
    ],
    queues: [intakeQueueDeclaration(names), deadLetterQueueDeclaration(names)],
    queueBindings: [
      { queue: names.queue, exchange: names.exchange, routingKey: CHAT_INTAKE_ROUTING_KEY },
      { queue: names.deadLetterQueue, exchange: names.deadLetterExchange, routingKey: names.deadLetterQueue },
    ],
  };
}

// ------------------------------------------------------------------ wire format

const text = (max: number) => z.string().min(1).max(max);

const draftSchema = z.object({
  op: z.literal('message'),
  class: z.literal('chat'),
  room: text(1024),
  id: text(128),
  from: text(1024),
  ts: z.number().int().nonnegative(),
  data: z.unknown(),
  cmid: text(64).optional(),
  action: z.enum(['edit', 'delete', 'react']).optional(),
  target: z.object({ id: text(128), offset: z.number().int().positive() }).optional(),
});

const requestSchema = z.object({
  v: z.literal(CHAT_INTAKE_VERSION),
  tenant: text(1024),
  room: text(1024),
  /** The room's hot-lane channel: the node names channels, the worker publishes on it. */
  channel: text(4096),
  /** The sending node: the `origin` of the envelope. */
  origin: text(256),
  draft: draftSchema,
});

export type ChatIntakeRequest = z.infer<typeof requestSchema>;

export function intakeRequest(room: RoomRef, channel: string, origin: string, draft: ChatDraft): ChatIntakeRequest {
  return { v: CHAT_INTAKE_VERSION, tenant: room.tenant, room: room.room, channel, origin, draft };
}

/** The request in a delivery body, or a reason it is not one. */
export function parseIntakeRequest(body: unknown): { ok: true; request: ChatIntakeRequest } | { ok: false; reason: string } {
  const parsed = requestSchema.safeParse(body);
  if (parsed.success) return { ok: true, request: parsed.data };
  const issue = parsed.error.issues[0];
  return { ok: false, reason: issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'not a chat intake request' };
}

export type ChatIntakeReply = { v: 1; ok: true; message: ChatMessage; duplicate: boolean } | { v: 1; ok: false; code: ErrorCode; message: string };

const replySchema = z.union([
  z.object({
    v: z.literal(CHAT_INTAKE_VERSION),
    ok: z.literal(true),
    message: draftSchema.extend({ offset: z.number().int().positive(), epoch: text(128) }),
    duplicate: z.boolean(),
  }),
  z.object({
    v: z.literal(CHAT_INTAKE_VERSION),
    ok: z.literal(false),
    code: z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]]),
    message: z.string().max(4096),
  }),
]);

export function parseIntakeReply(body: unknown): ChatIntakeReply | undefined {
  const parsed = replySchema.safeParse(body);
  return parsed.success ? parsed.data : undefined;
}

export function storedReply(result: AppendResult): ChatIntakeReply {
  return { v: CHAT_INTAKE_VERSION, ok: true, message: result.message, duplicate: result.duplicate };
}

export function failedReply(code: ErrorCode, message: string): ChatIntakeReply {
  return { v: CHAT_INTAKE_VERSION, ok: false, code, message };
}
