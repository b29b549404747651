/**
 * Starting and stopping what the benchmark measures (3 nerve nodes or 3
 * Socket.IO servers on one Redis) and the load workers that drive them.
 * Ports are read from each server's `listening` line, never guessed.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { System } from './clients.js';
import type { WorkerCommand } from '../worker.js';
import { Inspector, INSPECTOR_LINE } from './inspector.js';
import { Calls } from './calls.js';
import { cpuSeconds, rssBytes, sum } from './stats.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface ServerProc {
  pid: number;
  port: number;
  /** What a client connects to: ws://…/ws for nerve, http://… for Socket.IO. */
  url: string;
  child: ChildProcess;
  /** The server's inspector session, when the cluster was started with `inspect`. */
  inspector?: Inspector;
}

/**
 * One server's runtime figures from its metrics endpoint (nerve's `/metrics`,
 * the limit server's copy of the same two series): the event-loop delay p99
 * since the previous read (prom-client restarts its `monitorEventLoopDelay`
 * histogram at each scrape) and the GC time since the start.
 */
export interface RuntimeReading {
  /** ms by which the loop's 10 ms sampling timer fired late, p99 (the histogram's value minus the 10 ms interval). */
  loopDelayP99Ms: number;
  /** Total GC pause time since the process started, ms. */
  gcMs: number;
}

/** prom-client's default `monitorEventLoopDelay` resolution: each sample is this interval plus the delay. */
const LOOP_SAMPLE_MS = 10;

/** The two runtime series out of a Prometheus text page. */
function parseRuntime(page: string): RuntimeReading {
  let p99 = Number.NaN;
  let gcSeconds = 0;
  for (const line of page.split('\n')) {
    const value = () => Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('nerve_process_nodejs_eventloop_lag_p99_seconds')) p99 = value();
    else if (line.startsWith('nerve_process_nodejs_gc_duration_seconds_sum')) gcSeconds += value();
  }
  return { loopDelayP99Ms: Math.max(0, p99 * 1000 - LOOP_SAMPLE_MS), gcMs: gcSeconds * 1000 };
}

export interface Cluster {
  system: System;
  /** The Redis namespace of this cluster (nerve `--env`, Socket.IO adapter `key`, limit-3's channel: no keys). */
  namespace: string;
  servers: ServerProc[];
  cpuSeconds(): number;
  rssBytes(): number;
  /**
   * Each server's runtime figures (RuntimeReading), read over HTTP; undefined
   * for a system without them (Socket.IO). A read restarts the event-loop
   * histogram, so read once before a measured phase and once after it.
   */
  runtime(): Promise<RuntimeReading[] | undefined>;
  /** V8 heap in use of the servers after a full GC, summed; only for a cluster started with `inspect`. */
  heapUsed(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * The first line of `stream` that `match` accepts (its value); the child is
 * killed after `timeoutMs` without one, and an exit before it rejects.
 * `context()` adds to either error (e.g. the stderr so far).
 */
function waitForLine<T>(
  child: ChildProcess,
  stream: 'stdout' | 'stderr',
  match: (line: string) => T | undefined,
  what: string,
  timeoutMs: number,
  context: () => string = () => '',
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} not seen within ${timeoutMs} ms${context()}`));
    }, timeoutMs);
    const lines = createInterface({ input: child[stream]! });
    lines.on('line', (line) => {
      const value = match(line);
      if (value === undefined) return;
      clearTimeout(timer);
      resolve(value);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ${what}${context()}`));
    });
  });
}

/** The port from the server's `listening` log line (stdout, JSON). */
function waitListening(child: ChildProcess, what: string, timeoutMs: number): Promise<number> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const listeningPort = (line: string): number | undefined => {
    try {
      const entry = JSON.parse(line) as { msg?: string; port?: number };
      return entry.msg === 'listening' && typeof entry.port === 'number' ? entry.port : undefined;
    } catch {
      return undefined; // not a JSON log line
    }
  };
  return waitForLine(child, 'stdout', listeningPort, `${what} listening`, timeoutMs, () => `; stderr: ${stderr}`);
}

/** The inspector's session URL, from the line Node prints on stderr before anything else. */
function waitInspectorUrl(child: ChildProcess, what: string, timeoutMs: number): Promise<string> {
  return waitForLine(child, 'stderr', (line) => INSPECTOR_LINE.exec(line)?.[1], `${what}'s inspector URL`, timeoutMs);
}

async function stopChild(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

/** Delete every Redis key under `prefix` (SCAN, never FLUSH: the Redis is shared). */
async function deleteKeys(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  let deleted = 0;
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}

export interface ClusterOptions {
  nodes?: number;
  /** Extra `nerve serve` flags. */
  nerveArgs?: string[];
  /**
   * Start every server with `--inspect=127.0.0.1:0` and attach a DevTools
   * session (`Cluster.heapUsed()`). Off unless asked: only the memory scenario
   * needs it, and no CPU figure should run with an inspector agent in the server.
   */
  inspect?: boolean;
}

/** Clusters not yet stopped, so an interrupted run can still stop its servers and delete its keys. */
const liveClusters = new Set<Cluster>();

export async function startCluster(system: System, options: ClusterOptions = {}): Promise<Cluster> {
  const namespace = `bench-${randomBytes(4).toString('hex')}`;
  const limit = system === 'limit1' || system === 'limit3';
  // limit-1 is one process by definition; every other system is a cluster.
  const count = system === 'limit1' ? 1 : (options.nodes ?? 3);
  const starts = Array.from({ length: count }, (_, i) => {
    const nodeId = `${namespace}-${system}-${i + 1}`;
    // Flags and their values in pairs.
    // prettier-ignore
    const args =
      system === 'nerve'
        ? [
            '--import', 'tsx', 'src/cli/main.ts', 'serve',
            '--port', '0', '--host', '127.0.0.1', '--node-id', nodeId,
            '--redis-url', REDIS_URL, '--env', namespace,
            '--log-level', 'info', '--no-demo',
            // Generous limits: the load generator, not a limiter, must be the bottleneck.
            '--rate-per-second', '1000000', '--rate-burst', '1000000', '--room-rate-per-second', '1000000', '--room-rate-burst', '1000000',
            '--max-rooms', '10000',
            ...(options.nerveArgs ?? []),
          ]
        : limit
          ? ['--import', 'tsx', 'bench/limit-server.ts', '--port', '0', '--host', '127.0.0.1', '--node-id', nodeId,
             ...(system === 'limit3' ? ['--redis-url', REDIS_URL, '--channel', namespace] : [])]
          : ['--import', 'tsx', 'bench/sio-server.ts', '--port', '0', '--host', '127.0.0.1', '--redis-url', REDIS_URL, '--key', namespace, '--node-id', nodeId];
    // BENCH_CPU_PROF=<dir>: every server writes a V8 CPU profile there when it stops (open in Chrome DevTools).
    const profile = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
    // BENCH_SERVER_FLAGS="--perf-basic-prof …": extra node flags for every server (e.g. to read JS frames in `perf report`).
    const extraFlags = (process.env.BENCH_SERVER_FLAGS ?? '').split(' ').filter((flag) => flag !== '');
    // Loopback, port 0: one free port per server, read back from the line Node prints.
    const inspect = options.inspect ? ['--inspect=127.0.0.1:0'] : [];
    const child = spawn(process.execPath, [...inspect, ...profile, ...extraFlags, ...args], {
      cwd: ROOT,
      env: { ...process.env, NODE_ENV: 'production' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = waitListening(child, nodeId, 30_000).then((port): ServerProc => ({
      pid: child.pid as number,
      port,
      url: system === 'socketio' ? `http://127.0.0.1:${port}` : `ws://127.0.0.1:${port}/ws`,
      child,
    }));
    if (!options.inspect) return server;
    return Promise.all([server, waitInspectorUrl(child, nodeId, 30_000)]).then(async ([proc, inspectorUrl]) => {
      try {
        // Attached now, before any measurement: the session's own memory is then part of every "before".
        return { ...proc, inspector: await Inspector.connect(inspectorUrl) };
      } catch (error) {
        await stopChild(child);
        throw error;
      }
    });
  });
  const settled = await Promise.allSettled(starts);
  const servers = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failure = settled.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  let stopping: Promise<void> | undefined;
  const cluster: Cluster = {
    system,
    namespace,
    servers,
    cpuSeconds: () => sum(servers.map((server) => cpuSeconds(server.pid))),
    rssBytes: () => sum(servers.map((server) => rssBytes(server.pid))),
    runtime: async () => {
      if (system === 'socketio') return undefined;
      return Promise.all(
        servers.map(async (server) => {
          const response = await fetch(`http://127.0.0.1:${server.port}/metrics`, { signal: AbortSignal.timeout(10_000) });
          if (!response.ok) throw new Error(`/metrics of port ${server.port} answered ${response.status}`);
          return parseRuntime(await response.text());
        }),
      );
    },
    heapUsed: async () =>
      sum(
        await Promise.all(
          servers.map((server) => {
            if (!server.inspector) throw new Error('heapUsed(): the cluster was not started with inspect');
            return server.inspector.heapUsed();
          }),
        ),
      ),
    stop: () =>
      (stopping ??= (async () => {
        liveClusters.delete(cluster);
        // Sessions first: a Node process with a debugger attached may wait for it to leave before exiting.
        await Promise.all(servers.map(async (server) => server.inspector?.close()));
        await Promise.all(servers.map((server) => stopChild(server.child)));
        if (system === 'nerve') await deleteKeys(`${namespace}:`);
      })()),
  };
  liveClusters.add(cluster);
  if (failure) {
    await cluster.stop();
    throw failure.reason instanceof Error ? failure.reason : new Error(String(failure.reason));
  }
  return cluster;
}

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** One forked load-generator process (bench/worker.ts). */
export class Worker {
  private readonly calls = new Calls();
  private readonly exited: Promise<void>;

  constructor(readonly child: ChildProcess) {
    child.on('message', (reply: Reply) => this.calls.answer(reply.id, reply.ok ? { value: reply.result } : { error: new Error(reply.error) }));
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        this.calls.failAll(new Error(`worker exited with ${code}`));
        resolve();
      }),
    );
  }

  static start(maxOldSpaceMb = 2048): Worker {
    const child = fork(`${ROOT}bench/worker.ts`, [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx', `--max-old-space-size=${maxOldSpaceMb}`],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Worker(child);
  }

  /** Send a command; rejects if the worker does not answer within `timeoutMs`. */
  run<T>(command: WorkerCommand, timeoutMs = 120_000): Promise<T> {
    return this.calls.call<T>((id) => this.child.send({ id, command }), timeoutMs, `worker did not answer ${command.cmd} within ${timeoutMs} ms`);
  }

  async stop(): Promise<void> {
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** On SIGINT / SIGTERM: stop every live cluster (servers, Redis keys), then exit. */
export function stopClustersOnSignal(): void {
  const onSignal = () => {
    process.stderr.write('\ninterrupted: stopping servers\n');
    void Promise.allSettled([...liveClusters].map((cluster) => cluster.stop())).then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

export function startWorkers(count: number, maxOldSpaceMb?: number): Worker[] {
  return Array.from({ length: count }, () => Worker.start(maxOldSpaceMb));
}

export async function stopWorkers(workers: readonly Worker[]): Promise<void> {
  await Promise.all(workers.map((worker) => worker.stop()));
}
