/**
 * What the two cold-lane children share (bench/lib/cold-lane-child.ts through
 * nerve's RabbitEventLog, bench/lib/cold-limit-child.ts through a bare
 * publisher): the event they publish, the consumer's count, and the result
 * line, so both measure the same thing.
 */
import { randomUUID } from 'node:crypto';
import type { LifecycleEvent } from '../../src/events/event-log.js';
import { nowMs } from './stats.js';

/** Lines either child prints around its measured phase, so the parent reads the broker's CPU there. */
export const COLD_PHASE = { start: 'phase: measure', end: 'phase: measured' } as const;

/** Mark the start or end of the measured phase on stdout. */
export function markPhase(line: (typeof COLD_PHASE)[keyof typeof COLD_PHASE]): void {
  process.stdout.write(`${line}\n`);
}

/** The JSON line either child prints last. */
export interface ColdLaneResult {
  events: number;
  published: number;
  consumed: number;
  publishPerSecond: number;
  consumePerSecond: number;
  clientCpuMicrosPerEvent: number;
}

/** Event `i` of a run: a `message.created` lifecycle event carrying `body`. */
export function benchEvent(i: number, body: string): LifecycleEvent {
  return {
    v: 1,
    id: randomUUID(),
    type: 'message.created',
    ts: Date.now(),
    tenant: 'default',
    room: 'bench',
    session: 's1',
    node: 'bench',
    data: { messageId: randomUUID(), from: 'bench', offset: i + 1, epoch: 'e1', sentAt: Date.now(), body },
  };
}

/** Counts what the consumer receives, and when the last one came. */
export class ConsumeCounter {
  consumed = 0;
  lastConsumedMs = 0;
  private allConsumed = () => {};
  private readonly consumedAll = new Promise<void>((resolve) => (this.allConsumed = resolve));

  constructor(private readonly events: number) {}

  /** Call once per consumed event. */
  count(): void {
    this.consumed += 1;
    this.lastConsumedMs = nowMs();
    if (this.consumed === this.events) this.allConsumed();
  }

  /** Resolves once every event was consumed, or after `timeoutMs`. */
  async waitAll(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.consumedAll, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
}

/** The result line of a run that started at `start` and finished publishing at `publishedMs`. */
export function coldLaneResult(run: {
  events: number;
  published: number;
  counter: ConsumeCounter;
  start: number;
  publishedMs: number;
  cpu: NodeJS.CpuUsage;
}): ColdLaneResult {
  const { events, published, counter, start, publishedMs, cpu } = run;
  return {
    events,
    published,
    consumed: counter.consumed,
    publishPerSecond: published / ((publishedMs - start) / 1000),
    consumePerSecond: counter.consumed / (((counter.lastConsumedMs || publishedMs) - start) / 1000),
    clientCpuMicrosPerEvent: (cpu.user + cpu.system) / Math.max(1, published),
  };
}
