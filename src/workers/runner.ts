/**
 * The worker runner: validates options, opens what the worker needs (the
 * cold lane, a PostgreSQL pool, migrations), starts its consumers, and closes
 * in one order: stop consuming (letting in-flight events settle: commit, then
 * ack) → close the lane → end the pool → close the metrics port (when
 * `metricsPort` is set: `/metrics` and `/healthz`, see metrics.ts). Whoever
 * opens a connection closes it: an injected `eventLog` or `pool` is left open.
 */
import { hostname } from 'node:os';
import { pino, type Logger } from 'pino';
import pg from 'pg';
import type { ConsumerHandle, EventLog } from '../events/event-log.js';
import { RabbitEventLog } from '../events/rabbitmq.js';
import { ConfigError } from '../config/errors.js';
import { integer, pgIdentifier } from '../config/validate.js';
import { normalizePusherApps } from '../config/pusher-apps.js';
import { analytics } from './analytics.js';
import { billing } from './billing.js';
import { startChatIntake, type ChatIntakeHandle } from './chat-intake.js';
import { chatStore } from './chat-store.js';
import { cleanup } from './cleanup.js';
import { applyMigrations } from '../postgres/migrations.js';
import { WorkerMetrics, pollQueueDepth, serveWorkerMetrics } from './metrics.js';
import { webhooks } from './webhooks.js';
import { usage } from './usage.js';
import { traceHandler } from '../tracing/handler.js';
import { Tracing } from '../tracing/tracing.js';
import { WORKER_NAMES, type TestHooks, type WorkerContext, type WorkerDefinition, type WorkerName } from './worker.js';

const WORKERS: Readonly<Record<WorkerName, WorkerDefinition>> = {
  'chat-store': chatStore,
  billing,
  cleanup,
  analytics,
  webhooks,
  usage,
};

export interface WorkerOptions {
  /** AMQP URL of the cold lane. Required unless `eventLog` is given. */
  amqpUrl?: string;
  /** Use this EventLog (tests, one-process setups). The worker does not start or close it. Default: a RabbitEventLog on `amqpUrl`. */
  eventLog?: EventLog;
  /** PostgreSQL URL. Required by chat-store, billing, analytics and usage unless `pool` is given. */
  postgresUrl?: string;
  /** Use this pool. The worker does not end it. Default: a pool on `postgresUrl`. */
  pool?: pg.Pool;
  /** PostgreSQL schema for the worker's tables; created and migrated at start. Default `nerve`. */
  schema?: string;
  /** Environment name, first part of exchange and queue names. Default `dev`. */
  env?: string;
  /** Service name, second part of exchange and queue names. Default `nerve`. */
  service?: string;
  /** Events in the handler at once. Default 16. */
  prefetch?: number;
  /** Deliveries before an event is dead-lettered. Default: per worker (chat-store 10, billing 10, analytics 5, cleanup 8, webhooks 8). */
  maxAttempts?: number;
  /** First retry delay, ms; later ones double (exponential backoff). Default 1000. */
  retryDelayMs?: number;
  /** Longest retry delay, ms. Default 1 hour. */
  maxRetryDelayMs?: number;
  /** Declare quorum queues. Default false. */
  quorumQueues?: boolean;
  /** cleanup: URL POSTed for each room.ended. Required by cleanup. */
  cleanupHookUrl?: string;
  /** webhooks: URLs every event is POSTed to. At least one required by webhooks. */
  webhookUrls?: string[];
  /**
   * webhooks: Pusher apps (as `--pusher-apps` of the nodes: an array, JSON text
   * or a file path) whose `webhooks` get Pusher-format POSTs (docs/pusher.md).
   * With them, `webhookUrls` and `webhookSecret` become optional. Default none.
   */
  pusherApps?: unknown;
  /** Standard Webhooks secret, `whsec_<base64>` (other text is the key's UTF-8 bytes). Required by webhooks; signs cleanup calls when set. */
  webhookSecret?: string;
  /** Timeout of one outgoing HTTP call, ms. Default 10000. */
  httpTimeoutMs?: number;
  /** pino logger. Default: pino at `info` to stdout. */
  logger?: Logger;
  /**
   * Record a span per handled event (and per webhook request) through the
   * globally registered OpenTelemetry tracer provider, as children of the
   * span that emitted the event. The CLI sets it with `--otel-endpoint` or
   * `OTEL_*`. Default false.
   */
  tracing?: boolean;
  /** Serve `/metrics` and `/healthz` on this port (all interfaces); 0 = off. Default 0. */
  metricsPort?: number;
  /** Interface the metrics port binds to. Default: all. */
  metricsHost?: string;
  /** How often the queue depth gauge is polled while metrics are served, ms. Default 5000. */
  metricsPollMs?: number;
  /** Default label `process` of the worker metrics. Default `<hostname>-<pid>`. */
  processId?: string;
  /**
   * chat-store only: also serve the chat intake of nodes run with
   * `--bus rabbitmq --chat-path worker` (store, publish on the hot lane,
   * reply; src/workers/chat-intake.ts). Needs `amqpUrl`. Default false.
   */
  chatIntake?: boolean;
  /** Chat intake: how long a repeated (room, sender, cmid) is recognised, ms; match the nodes' setting. Default 120000. */
  idempotencyWindowMs?: number;
  /** Test hooks; see `TestHooks`. Default none. */
  hooks?: TestHooks;
}

export interface WorkerHandle {
  readonly name: WorkerName;
  /** Consumer queue names (before the `{env}.{service}.` prefix). */
  readonly queues: string[];
  readonly eventLog: EventLog;
  /** The worker's metrics (counted whether or not they are served). */
  readonly metrics: WorkerMetrics;
  /** Port `/metrics` is served on; undefined when `metricsPort` is 0. */
  readonly metricsPort: number | undefined;
  /** Stop consuming, let in-flight events settle, close what the worker opened. Idempotent. */
  close(): Promise<void>;
}

function isWorkerName(name: string): name is WorkerName {
  return (WORKER_NAMES as readonly string[]).includes(name);
}

function httpUrl(setting: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(setting, 'an http:// or https:// URL', value);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(setting, 'an http:// or https:// URL', value);
  return value;
}

/** Validate everything before opening anything, so bad configuration fails with one clear ConfigError. */
export function checkWorkerOptions(name: string, options: WorkerOptions): WorkerDefinition {
  if (!isWorkerName(name)) throw new ConfigError('worker', WORKER_NAMES.join(' | '), name);
  const definition = WORKERS[name];
  if (!options.eventLog && !options.amqpUrl) throw new ConfigError('amqpUrl', 'an amqp:// URL (the cold lane)', options.amqpUrl);
  if (definition.needsPostgres && !options.pool && !options.postgresUrl) {
    throw new ConfigError('postgresUrl', `a postgres:// URL (required by worker ${name})`, options.postgresUrl);
  }
  if (options.postgresUrl !== undefined && !/^postgres(ql)?:\/\//.test(options.postgresUrl)) {
    throw new ConfigError('postgresUrl', 'a postgres:// URL', options.postgresUrl);
  }
  pgIdentifier('schema', options.schema ?? 'nerve');
  const bounds = [
    ['prefetch', options.prefetch, 1, 65_535],
    ['maxAttempts', options.maxAttempts, 1, 1000],
    ['retryDelayMs', options.retryDelayMs, 1, 86_400_000],
    ['maxRetryDelayMs', options.maxRetryDelayMs, 1, 86_400_000],
    ['httpTimeoutMs', options.httpTimeoutMs, 1, 600_000],
    ['metricsPort', options.metricsPort, 0, 65_535],
    ['metricsPollMs', options.metricsPollMs, 10, 3_600_000],
    ['idempotencyWindowMs', options.idempotencyWindowMs, 0, 86_400_000],
  ] as const;
  for (const [setting, value, min, max] of bounds) if (value !== undefined) integer(setting, value, min, max);
  if (options.chatIntake) {
    if (name !== 'chat-store') throw new ConfigError('chatIntake', 'only with worker chat-store', name);
    if (!options.amqpUrl) throw new ConfigError('amqpUrl', 'an amqp:// URL (the chat intake publishes on the hot lane)', options.amqpUrl);
  }
  if (options.cleanupHookUrl !== undefined) httpUrl('cleanupHookUrl', options.cleanupHookUrl);
  for (const url of options.webhookUrls ?? []) httpUrl('webhookUrls', url);
  if (name === 'cleanup' && !options.cleanupHookUrl) throw new ConfigError('cleanupHookUrl', 'an http(s) URL (required by worker cleanup)', undefined);
  const pusherHooks = normalizePusherApps(options.pusherApps).some((app) => app.webhooks.length > 0);
  // Pusher apps with webhooks are enough on their own; generic URLs still need their secret.
  if (name === 'webhooks' && !(pusherHooks && (options.webhookUrls ?? []).length === 0)) {
    if ((options.webhookUrls ?? []).length === 0) throw new ConfigError('webhookUrls', 'at least one http(s) URL (required by worker webhooks)', undefined);
    if (!options.webhookSecret || options.webhookSecret.length < 16) {
      throw new ConfigError(
        'webhookSecret',
        'a secret of at least 16 characters (required by worker webhooks)',
        options.webhookSecret ? '<hidden>' : undefined,
      );
    }
  }
  return definition;
}

/** Start worker `name`. Resolves once its consumers are consuming. */
export async function runWorker(name: string, options: WorkerOptions): Promise<WorkerHandle> {
  const definition = checkWorkerOptions(name, options);
  const logger = (options.logger ?? pino({ level: 'info' })).child({ worker: definition.name });
  const schema = options.schema ?? 'nerve';
  const prefetch = options.prefetch ?? 16;

  let ownPool: pg.Pool | undefined;
  let ownLog: EventLog | undefined;
  let intake: ChatIntakeHandle | undefined;
  const handles: ConsumerHandle[] = [];
  const serving = (options.metricsPort ?? 0) > 0;
  const metrics = new WorkerMetrics({
    worker: definition.name,
    processMetrics: serving,
    ...(options.processId !== undefined ? { processId: options.processId } : {}),
  });
  let metricsServer: Awaited<ReturnType<typeof serveWorkerMetrics>> | undefined;
  let depthPoller: ReturnType<typeof pollQueueDepth> | undefined;
  let laneForHealth: EventLog | undefined;
  // Metrics are served until the very end, so a scrape during shutdown still sees the last outcomes.
  const closeOwned = async (): Promise<void> => {
    await depthPoller?.stop();
    await intake?.close();
    await Promise.all(handles.map((h) => h.close()));
    await ownLog?.close();
    await ownPool?.end();
    await metricsServer?.close();
  };

  try {
    if (serving) {
      // First, so a port in use fails before any connection is opened.
      metricsServer = await serveWorkerMetrics(
        metrics,
        options.metricsPort!,
        () => {
          if (!laneForHealth) return { ok: false, detail: 'starting' };
          const h = laneForHealth.health();
          if (!h.ok) return { ok: false, ...(h.detail ? { detail: h.detail } : {}) };
          return intake?.health() ?? { ok: true };
        },
        options.metricsHost,
      );
      logger.info({ port: metricsServer.port }, 'worker metrics on /metrics');
    }
    let pool = options.pool;
    if (definition.needsPostgres) {
      if (!pool) {
        ownPool = new pg.Pool({ connectionString: options.postgresUrl, max: Math.min(prefetch, 20) });
        // Idle clients cut by the server emit here; without a listener the process would crash.
        ownPool.on('error', (err) => logger.warn({ err }, 'postgres pool error'));
        pool = ownPool;
      }
      await applyMigrations(pool, schema, logger);
    }

    let eventLog = options.eventLog;
    if (!eventLog) {
      ownLog = new RabbitEventLog({
        url: options.amqpUrl!,
        ...(options.env ? { env: options.env } : {}),
        ...(options.service ? { service: options.service } : {}),
        ...(options.quorumQueues ? { quorumQueues: true } : {}),
        logger,
      });
      eventLog = ownLog;
      await eventLog.start();
    }
    laneForHealth = eventLog;

    const context: WorkerContext = {
      pool,
      schema,
      logger,
      cleanupHookUrl: options.cleanupHookUrl,
      webhookUrls: options.webhookUrls ?? [],
      webhookSecret: options.webhookSecret,
      pusherApps: normalizePusherApps(options.pusherApps),
      httpTimeoutMs: options.httpTimeoutMs ?? 10_000,
      hooks: options.hooks ?? {},
      tracing: options.tracing ? new Tracing() : undefined,
    };
    for (const consumer of definition.consumers(context)) {
      const maxAttempts = options.maxAttempts ?? definition.defaults.maxAttempts;
      const spec = {
        ...consumer.spec,
        prefetch,
        maxAttempts,
        retryDelayMs: options.retryDelayMs ?? definition.defaults.retryDelayMs,
        retryBackoff: definition.defaults.retryBackoff,
        ...(options.maxRetryDelayMs !== undefined ? { maxRetryDelayMs: options.maxRetryDelayMs } : {}),
      };
      handles.push(await eventLog.consume(spec, metrics.instrumentHandler(traceHandler(context.tracing, definition.name, consumer.handler), maxAttempts)));
    }
    if (options.chatIntake) {
      intake = await startChatIntake({
        url: options.amqpUrl!,
        env: options.env ?? 'dev',
        service: options.service ?? 'nerve',
        pool: pool!,
        schema,
        prefetch,
        idempotencyWindowMs: options.idempotencyWindowMs ?? 120_000,
        processId: options.processId ?? `${hostname()}-${process.pid}`,
        logger,
        metrics,
      });
    }
    const queues = handles.map((h) => h.queue);
    if (serving) depthPoller = pollQueueDepth(metrics, eventLog, queues, options.metricsPollMs ?? 5000, logger);
    logger.info({ queues, schema: definition.needsPostgres ? schema : undefined }, 'worker ready');

    let closing: Promise<void> | undefined;
    const log = eventLog;
    return {
      name: definition.name,
      queues,
      eventLog: log,
      metrics,
      metricsPort: metricsServer?.port,
      close() {
        closing ??= (async () => {
          logger.info('worker stopping');
          await closeOwned();
          logger.info('worker stopped');
        })();
        return closing;
      },
    };
  } catch (error) {
    await closeOwned().catch(() => undefined);
    throw error;
  }
}
