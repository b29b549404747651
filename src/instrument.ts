/**
 * Metrics that wrap a seam instead of living inside it (project issue 8):
 * the cold lane's confirm latency and the sampled end-to-end delivery
 * latency. Kept out of the drivers and the gateway so the hot path pays
 * nothing when it is not sampled.
 */
import type { BusEnvelope } from './bus/bus.js';
import type { ConsumerHandle, ConsumerSpec, EventHandler, EventLog, LifecycleEvent, PublishOptions } from './events/event-log.js';
import type { LaneHealth } from './lanes.js';
import type { NodeMetrics } from './metrics.js';
import { ROUTES } from './routing.js';
import type { MessageClass } from '../packages/protocol/src/frames.js';

/**
 * An EventLog that times every publish, from the call to the broker's
 * confirm (or the rejection), into `nerve_event_publish_seconds{outcome}`.
 * Everything else is passed through; the wrapped log stays the owner of its
 * connections.
 */
export class InstrumentedEventLog implements EventLog {
  /** Events confirmed since start (the admin page's cold-lane rate). */
  published = 0;

  constructor(
    readonly inner: EventLog,
    private readonly metrics: NodeMetrics,
  ) {}

  get driver(): string {
    return this.inner.driver;
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  async publish(event: LifecycleEvent, options?: PublishOptions): Promise<void> {
    const started = performance.now();
    try {
      await this.inner.publish(event, options);
      this.published += 1;
      this.metrics.eventPublishSeconds.observe({ outcome: 'ok' }, (performance.now() - started) / 1000);
    } catch (error) {
      this.metrics.eventPublishSeconds.observe({ outcome: 'error' }, (performance.now() - started) / 1000);
      throw error;
    }
  }

  consume(spec: ConsumerSpec, handler: EventHandler): Promise<ConsumerHandle> {
    return this.inner.consume(spec, handler);
  }

  outboxDepth(): number {
    return this.inner.outboxDepth();
  }

  health(): LaneHealth {
    return this.inner.health();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** One delivered chat or ephemeral envelope in this many is timed. */
const DELIVERY_SAMPLE_EVERY = 8;

/**
 * Samples the end-to-end latency of room messages as they are delivered
 * locally. The bus envelope carries no timestamp (and its codec stays as it
 * is); the message frame inside does: `ts`, stamped by the node that
 * accepted the message. Only a sampled payload is read, and only up to its
 * `ts`: no JSON.parse of a message that may be 64 KiB.
 */
export class DeliverySampler {
  /** Per class, so one class's traffic cannot keep the other from being sampled. */
  private readonly seen: Record<MessageClass, number> = { signal: 0, ephemeral: 0, presence: 0, chat: 0, lifecycle: 0 };

  constructor(
    private readonly metrics: NodeMetrics,
    private readonly every = DELIVERY_SAMPLE_EVERY,
    private readonly now: () => number = Date.now,
  ) {}

  /** Call after the envelope was handed to the local sockets. */
  delivered(envelope: BusEnvelope): void {
    if (envelope.type !== 'deliver' || !ROUTES[envelope.class].sampleLatency) return;
    const seen = (this.seen[envelope.class] += 1);
    if (seen % this.every !== 0) return;
    const ts = frameTs(envelope.payload);
    if (ts === undefined) return;
    this.metrics.deliveryLatency.observe({ class: envelope.class }, Math.max(0, this.now() - ts) / 1000);
  }
}

const TS_KEY = ',"ts":';

/**
 * The server time of an encoded message frame. Its keys come in a fixed
 * order (op, class, room, id, from, ts, data, ...), and room, id and from
 * are allowlisted ids that cannot contain `"ts":`, so the first `,"ts":` is
 * the stamped one: a user's own `ts` inside `data` comes after it.
 */
export function frameTs(payload: string): number | undefined {
  const at = payload.indexOf(TS_KEY);
  if (at === -1) return undefined;
  let end = at + TS_KEY.length;
  let ts = 0;
  for (let code = payload.charCodeAt(end); code >= 48 && code <= 57; code = payload.charCodeAt(++end)) ts = ts * 10 + (code - 48);
  return end > at + TS_KEY.length && Number.isSafeInteger(ts) ? ts : undefined;
}
