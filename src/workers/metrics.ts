/**
 * Prometheus metrics of one worker process (`--metrics-port`), on a registry
 * of its own so workers in one test process never share counters. Names are
 * in docs/operations.md (rows marked *worker*). `instrumentHandler` wraps each
 * handler, counting the outcome the lane acts on: a throw (or an unknown
 * answer) is `retry`, and a `retry` on the last attempt `dead_letter`.
 */
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EventHandler, EventLog, HandlerOutcome } from '../events/event-log.js';

/** Handler time, 1 ms to 30 s: a database commit in the first half, a slow webhook receiver in the second. */
const HANDLER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Event age, 5 ms to 1 h: a live consumer in the first buckets, a backlog or retried events in the last ones. */
const AGE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export interface WorkerMetricsOptions {
  /** Worker name: the default label `worker` and the `worker` label of the worker series. */
  worker: string;
  /** Default label `process`, telling replicas of one worker apart. Default `<hostname>-<pid>`. */
  processId?: string;
  /** Register prom-client's process metrics (prefix `nerve_process_`). Default true. */
  processMetrics?: boolean;
}

export class WorkerMetrics {
  readonly registry = new Registry();
  readonly worker: string;

  readonly events = new Counter({
    name: 'nerve_worker_events_total',
    help: 'Events handled by a worker, by queue and outcome: `ack`, `retry` (handler asked or threw; redelivered later) or `dead_letter` (handler asked, or retry on the last attempt).',
    labelNames: ['worker', 'queue', 'outcome'],
    registers: [this.registry],
  });
  readonly handlerSeconds = new Histogram({
    name: 'nerve_worker_handler_seconds',
    help: 'Time a worker spent in its event handler (commit or HTTP call included), whatever the outcome.',
    labelNames: ['worker'],
    buckets: HANDLER_BUCKETS,
    registers: [this.registry],
  });
  readonly eventAge = new Histogram({
    name: 'nerve_worker_event_age_seconds',
    help: 'Consumer lag: age of an event (now minus its server stamp `ts`) when the worker started handling it; retries include their delay.',
    labelNames: ['worker'],
    buckets: AGE_BUCKETS,
    registers: [this.registry],
  });
  readonly chatIntake = new Counter({
    name: 'nerve_worker_chat_intake_total',
    help: 'Chat intake requests (chat-store --chat-intake) by outcome: `stored`, `duplicate` (cmid retry or redelivery: the stored message was returned), `failed` or `invalid` (both answered with an error and dead-lettered).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'nerve_worker_queue_depth',
    help: 'Events ready in a worker queue (not in a handler, not waiting for a retry), polled every few seconds.',
    labelNames: ['queue'],
    registers: [this.registry],
  });

  constructor(options: WorkerMetricsOptions) {
    this.worker = options.worker;
    this.registry.setDefaultLabels({ worker: options.worker, process: options.processId ?? `${hostname()}-${process.pid}` });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'nerve_process_' });
  }

  /**
   * Wrap a consumer's handler: count its outcome (as the lane will act on
   * it), time it, and observe the event's age. Errors are rethrown unchanged,
   * so the lane still logs and retries them.
   */
  instrumentHandler(handler: EventHandler, maxAttempts: number): EventHandler {
    return async (event, info) => {
      const started = performance.now();
      this.eventAge.observe({ worker: this.worker }, Math.max(0, (Date.now() - event.ts) / 1000));
      let outcome: HandlerOutcome = 'retry';
      try {
        const answer = await handler(event, info);
        if (answer === 'ack' || answer === 'retry' || answer === 'dead_letter') outcome = answer;
        return answer;
      } finally {
        if (outcome === 'retry' && info.attempt >= maxAttempts) outcome = 'dead_letter';
        this.handlerSeconds.observe({ worker: this.worker }, (performance.now() - started) / 1000);
        this.events.inc({ worker: this.worker, queue: info.queue, outcome });
      }
    };
  }
}

/** A lane that can tell how many events wait in a consumer queue (RabbitEventLog, MemoryEventLog). */
interface QueueDepthSource {
  queueDepth(queue: string): number | undefined | Promise<number | undefined>;
}

function hasQueueDepth(log: EventLog): log is EventLog & QueueDepthSource {
  return typeof (log as Partial<QueueDepthSource>).queueDepth === 'function';
}

/**
 * Poll the depth of `queues` every `intervalMs` (first poll at once) into
 * `nerve_worker_queue_depth`. A lane without `queueDepth` is not polled.
 * `stop()` clears the timer and waits for a poll in progress.
 */
export function pollQueueDepth(metrics: WorkerMetrics, log: EventLog, queues: string[], intervalMs: number, logger: Logger): { stop(): Promise<void> } {
  if (!hasQueueDepth(log)) return { stop: async () => undefined };
  let running: Promise<void> | undefined;
  let warned = false;
  const poll = (): void => {
    if (running) return;
    running = (async () => {
      for (const queue of queues) {
        try {
          const depth = await log.queueDepth(queue);
          if (depth !== undefined) metrics.queueDepth.set({ queue }, depth);
          warned = false;
        } catch (err) {
          // Broker down: keep the last value and say so once per outage; the lane reconnects on its own.
          if (!warned) logger.warn({ err, queue }, 'queue depth poll failed');
          warned = true;
        }
      }
    })().finally(() => {
      running = undefined;
    });
  };
  poll();
  const timer = setInterval(poll, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

/**
 * Serve `GET /metrics` (Prometheus text format) and `GET /healthz` (200 while
 * the cold lane is healthy, else 503) on `port`. Resolves once listening.
 */
export async function serveWorkerMetrics(
  metrics: WorkerMetrics,
  port: number,
  health: () => { ok: boolean; detail?: string },
  host?: string,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err)),
      );
      return;
    }
    if (path === '/healthz') {
      const h = health();
      res
        .writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ok: h.ok, worker: metrics.worker, ...(h.detail ? { detail: h.detail } : {}) }));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const bound = address !== null && typeof address === 'object' ? address.port : port;
  let closing: Promise<void> | undefined;
  return {
    server,
    port: bound,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
