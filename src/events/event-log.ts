/**
 * The cold lane seam: durable lifecycle events (docs/events.md), in memory.ts
 * and rabbitmq.ts. Contract (test/conformance/event-log.ts): `publish`
 * resolves once the event is durably accepted, and rejects with `unavailable`
 * when the bounded outbox is full; each consumer has its own queue bound to
 * topic patterns; a handler answers `ack`, `retry` or `dead_letter` (a throw
 * is `retry`), at most `prefetch` at once, dead-lettered after `maxAttempts`.
 * Delivery is at least once: handlers are idempotent by `event.id`.
 */
import type { LaneHealth } from '../lanes.js';

export const EVENT_VERSION = 1;

/** Audit events of the admin API (docs/events.md, "admin.*"): one per action, before it is taken. */
const ADMIN_EVENT_TYPES = ['admin.disconnect', 'admin.end_room', 'admin.publish', 'admin.set_quotas'] as const;
export type AdminEventType = (typeof ADMIN_EVENT_TYPES)[number];

/** Every event type, the one list the type and the validator are made from. */
export const EVENT_TYPES = [
  'room.created',
  'room.ended',
  'participant.joined',
  'participant.left',
  'message.created',
  'recording.requested',
  'call.started',
  'call.ended',
  'read.updated',
  'usage.reported',
  'pusher.webhook',
  ...ADMIN_EVENT_TYPES,
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface LifecycleEvent<T extends EventType = EventType> {
  v: number;
  /** Unique event id; consumers deduplicate on it. */
  id: string;
  type: T;
  /** Server time, ms since epoch. */
  ts: number;
  tenant: string;
  room?: string;
  /** Identifies one life of a room, from room.created to room.ended. */
  session?: string;
  /** Node that emitted the event. */
  node: string;
  data: Record<string, unknown>;
}

export type HandlerOutcome = 'ack' | 'retry' | 'dead_letter';

export interface DeliveryInfo {
  /** 1 on first delivery. */
  attempt: number;
  queue: string;
  /** W3C trace context the event was published with (the AMQP `traceparent` header), when tracing was on. */
  traceparent?: string;
}

/** How one event is published: metadata that travels beside the event, not in it. */
export interface PublishOptions {
  /** W3C trace context of the span that emitted the event; sent as the `traceparent` message header. */
  traceparent?: string | undefined;
}

export type EventHandler = (event: LifecycleEvent, info: DeliveryInfo) => Promise<HandlerOutcome>;

export interface ConsumerSpec {
  /** Queue name, unique per consumer (`billing`, `chat-store`, ...). */
  queue: string;
  /** Topic patterns: `*` matches one dot-separated word, `#` zero or more. */
  bindings: string[];
  /** Most events in the handler at once. Default 16. */
  prefetch?: number;
  /** Deliveries before dead-lettering. Default 5. */
  maxAttempts?: number;
  /** Delay before a retried event is delivered again. Default 1000 ms. */
  retryDelayMs?: number;
  /**
   * `fixed`: every retry waits `retryDelayMs`. `exponential`: retry n waits
   * `retryDelayMs × 2^(n-1)`, capped at `maxRetryDelayMs`. Default `fixed`.
   */
  retryBackoff?: 'fixed' | 'exponential';
  /** Longest retry delay with exponential backoff. Default max(retryDelayMs, 1 hour). */
  maxRetryDelayMs?: number;
}

/** Why an event sits in a dead-letter queue. */
export type DeadLetterReason = 'max_attempts' | 'dead_letter' | 'invalid';

export interface ConsumerHandle {
  readonly queue: string;
  /** Stop taking new events and wait for the ones in the handler. Idempotent. */
  close(): Promise<void>;
}

export interface EventLog {
  readonly driver: string;
  start(): Promise<void>;
  publish(event: LifecycleEvent, options?: PublishOptions): Promise<void>;
  consume(spec: ConsumerSpec, handler: EventHandler): Promise<ConsumerHandle>;
  /** Events accepted but not yet confirmed by the lane. */
  outboxDepth(): number;
  health(): LaneHealth;
  /** Flush the outbox (bounded by the caller's timeout), then close. Idempotent. */
  close(): Promise<void>;
}
