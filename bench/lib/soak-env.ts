/**
 * What the chaos soak runs against: its own Redis (behind a fault proxy),
 * the shared RabbitMQ and PostgreSQL (each behind a fault proxy, never
 * stopped), a 3-node nerve cluster and a chat-store worker, all in one
 * random namespace (`--env`, exchange and queue prefix, PostgreSQL schema)
 * that `stop()` removes again.
 */
import pg from 'pg';
import { Connection } from 'rabbitmq-client';
import { startNode, type NodeProcess } from '../../test/helpers/node-process.js';
import { listExchanges, listQueues } from '../../test/helpers/rabbitmq.js';
import { redisServerSkipReason, startRedis, type RedisServer } from '../../test/helpers/redis-server.js';
import { canConnect } from '../../test/helpers/tcp-proxy.js';
import { spawnWorker, type WorkerProcess } from '../../test/helpers/worker-process.js';
import { startFaultProxy, type FaultProxy } from './soak-proxy.js';

const SOAK_AMQP_PORT = 5672;
const SOAK_POSTGRES_URL = process.env.NERVE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Limits the soak runs the nodes with (documented in bench/README.md). */
const SOAK_NODE_LIMITS = {
  presenceTtlMs: 4000,
  /** Small send buffers, so a client that stops reading is found within seconds. */
  sendBufferSoftBytes: 64 * 1024,
  sendBufferHardBytes: 256 * 1024,
  historySize: 100_000,
  recoveryLimit: 100_000,
} as const;

export interface NodeSlot {
  index: number;
  /** Incarnation: bumped at every restart, part of the node id. */
  generation: number;
  /** Undefined while the node is down. */
  process: NodeProcess | undefined;
  /** False from the moment a fault takes it away until it listens again. */
  up: boolean;
}

/** A node or worker that exited without the soak asking it to: a crash. */
export interface UnexpectedExit {
  at: number;
  what: string;
  code: number | null;
  signal: string | null;
  /** The last log lines and stderr, to say why. */
  detail: string;
}

export interface SoakEnv {
  namespace: string;
  redis: RedisServer;
  redisProxy: FaultProxy;
  amqpProxy: FaultProxy;
  postgresProxy: FaultProxy;
  /** The soak's own pool on PostgreSQL (direct, never through the proxy). */
  db: pg.Pool;
  schema: string;
  slots: NodeSlot[];
  worker: WorkerProcess | undefined;
  /** Crashes seen so far. A crashed worker is started again after 1 s, as a supervisor would (the crash stays reported). */
  readonly crashes: UnexpectedExit[];
  /** ws:// URL of slot `i` while it is up. */
  wsUrl(i: number): string | undefined;
  httpUrl(i: number): string | undefined;
  startSlot(i: number): Promise<NodeProcess>;
  killSlot(i: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  startWorker(): Promise<WorkerProcess>;
  killWorker(): Promise<void>;
  stop(): Promise<void>;
}

/** Undefined when every service the soak needs is here; otherwise why not (thrown under CI=true). */
export async function soakServicesMissing(): Promise<string | undefined> {
  const missing: string[] = [];
  const noRedis = await redisServerSkipReason().catch((error: unknown) => String(error));
  if (noRedis) missing.push(noRedis);
  if (!(await canConnect(SOAK_AMQP_PORT))) missing.push('RabbitMQ not reachable on 127.0.0.1:5672');
  if (!(await canConnect(Number(new URL(SOAK_POSTGRES_URL).port || 5432)))) missing.push(`PostgreSQL not reachable at ${SOAK_POSTGRES_URL}`);
  if (missing.length === 0) return undefined;
  const reason = missing.join('; ');
  if (process.env.CI === 'true') throw new Error(`${reason} (required in CI)`);
  return reason;
}

export interface SoakEnvOptions {
  namespace: string;
  nodes: number;
  log: (line: string) => void;
}

export async function startSoakEnv(options: SoakEnvOptions): Promise<SoakEnv> {
  const { namespace, log } = options;
  const schema = namespace;
  // appendfsync always: an acked chat message must survive the Redis restart fault,
  // as it would on a server configured for it; without it a restart loses the log by design.
  const redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
  const redisProxy = await startFaultProxy(redis.port);
  const amqpProxy = await startFaultProxy(SOAK_AMQP_PORT);
  const pgUrl = new URL(SOAK_POSTGRES_URL);
  const postgresProxy = await startFaultProxy(Number(pgUrl.port || 5432), pgUrl.hostname);
  const proxiedPg = new URL(SOAK_POSTGRES_URL);
  proxiedPg.port = String(postgresProxy.port);
  const amqpUrl = `amqp://guest:guest@127.0.0.1:${amqpProxy.port}`;
  const redisUrl = `redis://127.0.0.1:${redisProxy.port}`;
  const db = new pg.Pool({ connectionString: SOAK_POSTGRES_URL, max: 4 });
  db.on('error', () => undefined);

  // Flags and their values in pairs.
  // prettier-ignore
  const nodeArgs = [
    '--redis-url', redisUrl,
    '--amqp-url', amqpUrl,
    '--env', namespace,
    '--no-demo',
    '--presence-ttl-ms', String(SOAK_NODE_LIMITS.presenceTtlMs),
    '--send-buffer-soft-bytes', String(SOAK_NODE_LIMITS.sendBufferSoftBytes),
    '--send-buffer-hard-bytes', String(SOAK_NODE_LIMITS.sendBufferHardBytes),
    '--history-size', String(SOAK_NODE_LIMITS.historySize),
    '--recovery-limit', String(SOAK_NODE_LIMITS.recoveryLimit),
    '--drain-window-ms', '500',
    '--shutdown-timeout-ms', '4000',
    '--heartbeat-ms', '5000',
  ];
  const slots: NodeSlot[] = Array.from({ length: options.nodes }, (_, index) => ({ index, generation: 0, process: undefined, up: false }));
  let worker: WorkerProcess | undefined;
  let workerGeneration = 0;
  let stoppingAll = false;
  const crashes: UnexpectedExit[] = [];
  const stderrTail = (child: { stderr: NodeJS.ReadableStream | null }): (() => string) => {
    let tail = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      tail = (tail + chunk.toString()).slice(-3000);
    });
    return () => tail;
  };
  const lastLogs = (logs: Array<Record<string, unknown>>): string =>
    logs
      .slice(-4)
      .map((entry) => JSON.stringify({ level: entry.level, msg: entry.msg, err: (entry.err as { message?: string } | undefined)?.message }))
      .join(' ');

  const slot = (i: number): NodeSlot => {
    const found = slots[i];
    if (!found) throw new RangeError(`no node slot ${i}`);
    return found;
  };
  const startSlot = async (i: number): Promise<NodeProcess> => {
    const s = slot(i);
    s.generation += 1;
    const node = await startNode({ nodeId: `${namespace}-n${i}g${s.generation}`, args: nodeArgs, timeoutMs: 60_000 });
    const stderr = stderrTail(node.child);
    s.process = node;
    s.up = true;
    void node.exited.then((code) => {
      if (s.process !== node || stoppingAll) return; // stopped or killed by the soak
      s.up = false;
      s.process = undefined;
      const crash = { at: Date.now(), what: `node n${i}`, code, signal: node.child.signalCode, detail: `${lastLogs(node.logs)} ${stderr()}`.slice(-2000) };
      crashes.push(crash);
      log(`CRASH: node n${i} exited by itself (${code ?? node.child.signalCode}): ${crash.detail}`);
    });
    return node;
  };
  const killSlot = async (i: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> => {
    const s = slot(i);
    s.up = false;
    const node = s.process;
    if (!node) return;
    s.process = undefined; // before the exit, so it is not taken for a crash
    if (signal === 'SIGKILL') await node.kill();
    else await node.stop(15_000);
  };
  const startWorker = async (): Promise<WorkerProcess> => {
    workerGeneration += 1;
    const started = spawnWorker([
      'chat-store',
      '--amqp-url',
      amqpUrl,
      '--postgres-url',
      proxiedPg.toString(),
      '--postgres-schema',
      schema,
      '--env',
      namespace,
      '--prefetch',
      '32',
    ]);
    const stderr = stderrTail(started.child);
    worker = started;
    void started.exited.then(({ code, signal }) => {
      if (worker !== started || stoppingAll) return; // killed or stopped by the soak
      worker = undefined;
      const crash = { at: Date.now(), what: 'chat-store worker', code, signal, detail: `${lastLogs(started.logs)} ${stderr()}`.slice(-2000) };
      crashes.push(crash);
      log(`CRASH: chat-store worker exited by itself (${code ?? signal}): ${crash.detail}`);
      // A supervisor (systemd, Kubernetes) would start it again; so does the soak, and the crash stays in the report.
      setTimeout(() => {
        if (!stoppingAll && worker === undefined) startWorker().catch((error: unknown) => log(`worker restart failed: ${String(error)}`));
      }, 1000);
    });
    const deadline = Date.now() + 60_000;
    while (!started.logs.some((entry) => entry.msg === 'worker ready')) {
      if (started.child.exitCode !== null || started.child.signalCode !== null)
        throw new Error(`chat-store worker exited before ready: ${JSON.stringify(started.logs.slice(-3))}`);
      if (Date.now() > deadline) throw new Error('chat-store worker not ready within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    log(`worker chat-store #${workerGeneration} ready`);
    return started;
  };
  const killWorker = async (): Promise<void> => {
    const current = worker;
    worker = undefined;
    if (!current || current.child.exitCode !== null || current.child.signalCode !== null) return;
    current.child.kill('SIGKILL');
    await current.exited;
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      stoppingAll = true;
      await Promise.all(slots.map(async (s) => s.process?.stop(8000)));
      const current = worker;
      if (current && current.child.exitCode === null && current.child.signalCode === null) {
        current.child.kill('SIGTERM');
        const timer = setTimeout(() => current.child.kill('SIGKILL'), 8000);
        await current.exited;
        clearTimeout(timer);
      }
      await Promise.all([redisProxy.close(), amqpProxy.close(), postgresProxy.close()]);
      await redis.stop();
      await cleanBroker(namespace).catch((error: unknown) => log(`broker clean-up failed: ${String(error)}`));
      await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch((error: unknown) => log(`schema drop failed: ${String(error)}`));
      await db.end();
    })();
    return stopping;
  };

  const env: SoakEnv = {
    namespace,
    redis,
    redisProxy,
    amqpProxy,
    postgresProxy,
    db,
    schema,
    slots,
    crashes,
    get worker() {
      return worker;
    },
    wsUrl: (i) => {
      const s = slots[i];
      return s?.up ? s.process?.wsUrl : undefined;
    },
    httpUrl: (i) => {
      const s = slots[i];
      return s?.up ? s.process?.url : undefined;
    },
    startSlot,
    killSlot,
    startWorker,
    killWorker,
    stop,
  };
  try {
    // The worker first: it declares its queue, so no message.created of the run is unroutable.
    await startWorker();
    await Promise.all(slots.map((s) => startSlot(s.index)));
  } catch (error) {
    await stop();
    throw error;
  }
  return env;
}

/** Delete the run's queues and exchanges on the shared broker (names start with `{namespace}.`). */
async function cleanBroker(namespace: string): Promise<void> {
  const admin = new Connection({ url: `amqp://guest:guest@127.0.0.1:${SOAK_AMQP_PORT}`, retryLow: 50 });
  admin.on('error', () => undefined);
  try {
    const queues = (await listQueues(`${namespace}.`)) ?? [`${namespace}.nerve.chat-store`];
    for (const queue of queues) await admin.queueDelete({ queue }).catch(() => undefined);
    const exchanges = (await listExchanges(`${namespace}.`)) ?? [`${namespace}.nerve.events`];
    for (const exchange of exchanges) await admin.exchangeDelete({ exchange }).catch(() => undefined);
  } finally {
    await admin.close();
  }
}
