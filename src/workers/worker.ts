/**
 * What a worker is: a name, the consumers it runs on the cold lane, and
 * whether it needs PostgreSQL. The runner (runner.ts) owns connections;
 * a worker only turns events into effects and answers ack / retry / dead_letter.
 */
import type { Logger } from 'pino';
import type pg from 'pg';
import type { ConsumerSpec, EventHandler } from '../events/event-log.js';
import type { Tracing } from '../tracing/tracing.js';
import type { PusherApp } from '../config/pusher-apps.js';

export const WORKER_NAMES = ['chat-store', 'billing', 'cleanup', 'analytics', 'webhooks', 'usage'] as const;
export type WorkerName = (typeof WORKER_NAMES)[number];

export interface TestHooks {
  /**
   * Test hook, never set in production: called after a worker committed an
   * event's effect and before the event is acked. The crash test
   * (test/integration/workers-crash.test.ts) kills the process here, via the
   * CLI's NERVE_TEST_CRASH_AFTER_COMMIT=1.
   */
  afterCommit?: (eventId: string) => void;
}

export interface WorkerContext {
  /** Present for workers with `needsPostgres`. */
  pool: pg.Pool | undefined;
  schema: string;
  logger: Logger;
  cleanupHookUrl: string | undefined;
  webhookUrls: string[];
  webhookSecret: string | undefined;
  /** Pusher apps whose `webhooks` the webhooks worker serves in Pusher's format (src/pusher/webhooks.ts); may be empty. */
  pusherApps: PusherApp[];
  httpTimeoutMs: number;
  hooks: TestHooks;
  /** Spans for outgoing calls (src/tracing/); absent when tracing is off. */
  tracing: Tracing | undefined;
}

export interface WorkerConsumer {
  spec: ConsumerSpec;
  handler: EventHandler;
}

export interface WorkerDefinition {
  name: WorkerName;
  needsPostgres: boolean;
  /** Defaults for this worker; flags override them. */
  defaults: { maxAttempts: number; retryDelayMs: number; retryBackoff: 'fixed' | 'exponential' };
  consumers(context: WorkerContext): WorkerConsumer[];
}

export function requirePool(context: WorkerContext): pg.Pool {
  if (!context.pool) throw new Error('this worker needs PostgreSQL');
  return context.pool;
}
