/**
 * `nerve worker <name> [flags]`: the only place worker settings are read from
 * flags and environment variables. A flag wins over its variable. Bad
 * configuration prints one line naming the setting and exits 2. SIGTERM or
 * SIGINT closes gracefully: consumers stop, in-flight events settle (commit,
 * then ack), connections close, exit 0.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../logger.js';
import { ConfigError } from '../config/errors.js';
import { errorText } from '../errors.js';
import { defaultLogFormat, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../config/options.js';
import { startTracingSdk } from '../tracing/sdk.js';
import { runWorker, type WorkerHandle, type WorkerOptions } from './runner.js';
import { WORKER_NAMES } from './worker.js';

interface WorkerSetting {
  flag: string;
  env: string;
  kind: 'string' | 'int' | 'bool' | 'list';
  defaultText: string;
  help: string;
}

const setting = (flag: string, kind: WorkerSetting['kind'], defaultText: string, help: string, env?: string): WorkerSetting => ({
  flag,
  env: env ?? `NERVE_${flag.replace(/-/g, '_').toUpperCase()}`,
  kind,
  defaultText,
  help,
});

export const WORKER_SETTINGS: readonly WorkerSetting[] = [
  setting('amqp-url', 'string', 'required', 'AMQP URL of the cold lane'),
  setting('postgres-url', 'string', 'required by chat-store, billing, analytics, usage', 'PostgreSQL URL'),
  setting('postgres-schema', 'string', 'nerve', 'schema of the worker tables (created and migrated at start)'),
  setting('env', 'string', 'dev', 'environment name, first part of exchange and queue names'),
  setting('service', 'string', 'nerve', 'service name, second part of exchange and queue names'),
  setting('prefetch', 'int', '16', 'events in the handler at once'),
  setting('max-attempts', 'int', 'per worker (5-10)', 'deliveries before an event goes to the dead-letter queue'),
  setting('retry-delay-ms', 'int', '1000', 'first retry delay; later retries double it'),
  setting('quorum-queues', 'bool', 'false', 'declare quorum queues (RabbitMQ >= 3.10)'),
  setting('chat-intake', 'bool', 'false', 'chat-store: also store and deliver the chat of nodes run with --bus rabbitmq --chat-path worker'),
  setting('idempotency-window-ms', 'int', '120000', 'chat intake: how long a repeated cmid is recognised (match the nodes)'),
  setting('cleanup-hook-url', 'string', 'required by cleanup', 'URL POSTed for each room.ended'),
  setting('webhook-url', 'list', 'required by webhooks', 'URL to POST every event to (repeatable; env: comma-separated)', 'NERVE_WEBHOOK_URLS'),
  setting('webhook-secret', 'string', 'required by webhooks', 'Standard Webhooks signing secret, whsec_<base64> (>= 16 chars)'),
  setting(
    'pusher-apps',
    'string',
    'none',
    "webhooks: Pusher apps (as the nodes' --pusher-apps) whose webhooks get Pusher-format POSTs; then --webhook-url is optional",
  ),
  setting('http-timeout-ms', 'int', '10000', 'timeout of one outgoing HTTP call'),
  setting('metrics-port', 'int', '0 = off', 'serve /metrics (Prometheus) and /healthz on this port'),
  setting('log-level', 'string', 'info', LOG_LEVELS.join(' | ')),
  setting('log-format', 'string', 'pretty on a terminal, else json', LOG_FORMATS.join(' | ')),
  setting('otel-endpoint', 'string', 'none (or OTEL_EXPORTER_OTLP_ENDPOINT)', 'OTLP/HTTP base URL: record a span per event and webhook call (tracing)'),
];

/**
 * Test hook, honoured only when set: NERVE_TEST_CRASH_AFTER_COMMIT=1 makes
 * the worker SIGKILL itself right after its first database commit, before the
 * ack (test/integration/workers-crash.test.ts). Never set it in production.
 */
const TEST_CRASH_ENV = 'NERVE_TEST_CRASH_AFTER_COMMIT';

function workerHelp(): string {
  const rows = WORKER_SETTINGS.map((s) => `  --${s.flag.padEnd(18)} ${s.env.padEnd(24)} ${s.help} (default: ${s.defaultText})`);
  return [
    'Usage: nerve worker <name> [flags]',
    '',
    `Workers: ${WORKER_NAMES.join(', ')}`,
    '  chat-store   message.created -> PostgreSQL; with --chat-intake also the chat intake',
    '               (store, deliver on the hot lane, answer the node) of --chat-path worker',
    '  billing      room.ended, call.ended -> participant-minutes per session and per call (PostgreSQL)',
    '  cleanup      room.ended -> POST to --cleanup-hook-url',
    '  analytics    per-room aggregates (PostgreSQL)',
    '  webhooks     every event -> signed POST to each --webhook-url; with --pusher-apps,',
    '               Pusher-format webhooks of the apps that have some',
    '  usage        usage.reported -> usage per tenant, node and interval (PostgreSQL)',
    '',
    'Flags (environment variable in the second column; a flag wins):',
    ...rows,
    '  --help                                      this text',
  ].join('\n');
}

function intValue(name: string, text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  if (!/^\d+$/.test(text)) throw new ConfigError(name, 'a non-negative integer', text);
  return Number(text);
}

function boolValue(name: string, text: string | boolean | undefined): boolean | undefined {
  if (text === undefined || typeof text === 'boolean') return text;
  if (['1', 'true', 'yes'].includes(text)) return true;
  if (['0', 'false', 'no', ''].includes(text)) return false;
  throw new ConfigError(name, 'true | false', text);
}

export interface ParsedWorkerCommand {
  name: string;
  options: WorkerOptions;
  logLevel: LogLevel;
  logFormat: LogFormat;
  help: boolean;
  /** `--otel-endpoint` (src/tracing/sdk.ts; the `OTEL_*` variables are read there). */
  otelEndpoint?: string | undefined;
}

/** Parse argv (after `worker`) and the environment. Throws ConfigError. */
export function parseWorkerCommand(argv: string[], env: NodeJS.ProcessEnv): ParsedWorkerCommand {
  const optionsSpec: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = { help: { type: 'boolean' } };
  for (const s of WORKER_SETTINGS)
    optionsSpec[s.flag] = s.kind === 'bool' ? { type: 'boolean' } : s.kind === 'list' ? { type: 'string', multiple: true } : { type: 'string' };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options: optionsSpec, allowPositionals: true, strict: true });
  } catch (error) {
    throw new ConfigError('flags', `known flags (nerve worker --help)`, errorText(error));
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const help = values.help === true;
  const [name, ...extra] = parsed.positionals;
  if (help) return { name: name ?? '', options: {}, logLevel: 'info', logFormat: 'json', help };
  if (name === undefined) throw new ConfigError('worker', WORKER_NAMES.join(' | '), undefined);
  if (extra.length > 0) throw new ConfigError('worker', 'one worker name', parsed.positionals.join(' '));

  const text = (flag: string): string | undefined => {
    const s = WORKER_SETTINGS.find((x) => x.flag === flag)!;
    const value = values[flag];
    if (typeof value === 'string') return value;
    const fromEnv = env[s.env];
    return fromEnv === '' ? undefined : fromEnv;
  };
  const listFlag = values['webhook-url'];
  const webhookUrls =
    Array.isArray(listFlag) && listFlag.length > 0
      ? listFlag
      : (env.NERVE_WEBHOOK_URLS ?? '')
          .split(',')
          .map((u) => u.trim())
          .filter((u) => u !== '');
  const logLevel = (text('log-level') ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('log-level', LOG_LEVELS.join(' | '), logLevel);
  // As for nodes: a terminal is a person reading, anything else gets JSON.
  const logFormat = (text('log-format') ?? defaultLogFormat()) as LogFormat;
  if (!LOG_FORMATS.includes(logFormat)) throw new ConfigError('log-format', LOG_FORMATS.join(' | '), logFormat);

  const options: WorkerOptions = {};
  const assign = <K extends keyof WorkerOptions>(key: K, value: WorkerOptions[K] | undefined): void => {
    if (value !== undefined) options[key] = value;
  };
  assign('amqpUrl', text('amqp-url'));
  assign('postgresUrl', text('postgres-url'));
  assign('schema', text('postgres-schema'));
  assign('env', text('env'));
  assign('service', text('service'));
  assign('prefetch', intValue('prefetch', text('prefetch')));
  assign('maxAttempts', intValue('max-attempts', text('max-attempts')));
  assign('retryDelayMs', intValue('retry-delay-ms', text('retry-delay-ms')));
  assign('quorumQueues', boolValue('quorum-queues', values['quorum-queues'] === true ? true : env.NERVE_QUORUM_QUEUES));
  assign('chatIntake', boolValue('chat-intake', values['chat-intake'] === true ? true : env.NERVE_CHAT_INTAKE));
  assign('idempotencyWindowMs', intValue('idempotency-window-ms', text('idempotency-window-ms')));
  assign('cleanupHookUrl', text('cleanup-hook-url'));
  if (webhookUrls.length > 0) options.webhookUrls = webhookUrls;
  assign('webhookSecret', text('webhook-secret'));
  assign('pusherApps', text('pusher-apps'));
  assign('httpTimeoutMs', intValue('http-timeout-ms', text('http-timeout-ms')));
  assign('metricsPort', intValue('metrics-port', text('metrics-port')));
  return { name, options, logLevel, logFormat, help, otelEndpoint: text('otel-endpoint') };
}

/** Map option names back to the flags the user typed, for the one-line error. */
const OPTION_FLAGS: Record<string, string> = {
  amqpUrl: 'amqp-url',
  postgresUrl: 'postgres-url',
  schema: 'postgres-schema',
  prefetch: 'prefetch',
  maxAttempts: 'max-attempts',
  retryDelayMs: 'retry-delay-ms',
  cleanupHookUrl: 'cleanup-hook-url',
  webhookUrls: 'webhook-url',
  webhookSecret: 'webhook-secret',
  pusherApps: 'pusher-apps',
  httpTimeoutMs: 'http-timeout-ms',
  metricsPort: 'metrics-port',
  chatIntake: 'chat-intake',
  idempotencyWindowMs: 'idempotency-window-ms',
  env: 'env',
  service: 'service',
};

function configLine(error: ConfigError): string {
  const flag = OPTION_FLAGS[error.setting] ?? error.setting;
  const s = WORKER_SETTINGS.find((x) => x.flag === flag);
  const where = s ? `--${s.flag} / ${s.env}` : flag;
  const received = error.setting === 'webhookSecret' ? '' : `, got ${error.received === undefined ? 'nothing' : JSON.stringify(error.received)}`;
  return `nerve worker: invalid setting ${where}: expected ${error.accepted}${received}\n`;
}

/**
 * Entry point of `nerve worker`. Resolves with the exit code once the worker
 * has stopped (after SIGTERM / SIGINT), or at once for --help and bad
 * configuration (2).
 */
export async function workerMain(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let command: ParsedWorkerCommand;
  try {
    command = parseWorkerCommand(argv, env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(configLine(error));
      return 2;
    }
    throw error;
  }
  if (command.help) {
    process.stdout.write(`${workerHelp()}\n`);
    return 0;
  }
  const logger = createLogger(command.logLevel, {}, command.logFormat);
  const sdk = await startTracingSdk({ endpoint: command.otelEndpoint, serviceName: 'nerve-worker', instanceId: `${command.name}-${process.pid}`, env });
  if (sdk) command.options.tracing = true;
  if (env[TEST_CRASH_ENV] === '1') {
    command.options.hooks = {
      afterCommit: (eventId) => {
        logger.warn({ eventId }, 'test hook: crashing after commit, before ack');
        process.kill(process.pid, 'SIGKILL');
      },
    };
  }

  let handle: WorkerHandle;
  let stopRequested: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => {
    stopRequested = resolve;
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    logger.info({ signal }, 'signal received, stopping');
    stopRequested?.();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    try {
      handle = await runWorker(command.name, { ...command.options, logger });
    } catch (error) {
      if (error instanceof ConfigError) {
        process.stderr.write(configLine(error));
        return 2;
      }
      logger.fatal({ err: error }, 'worker failed to start');
      return 1;
    }
    await stopped;
    await handle.close();
    return 0;
  } finally {
    await sdk?.shutdown();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
