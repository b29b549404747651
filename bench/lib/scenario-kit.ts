/**
 * What every comparison scenario uses (scenarios.ts, pusher-scenario.ts):
 * the sizes of a full and a quick run, the figures a run returns, a fresh
 * cluster with its load workers, opening connections spread over the
 * workers, the error-frame count, the runtime figures and the fan-out burst.
 */
import type { ConnKind, MessageClass, System } from './clients.js';
import { startCluster, startWorkers, stopWorkers, type Cluster, type ClusterOptions, type Worker } from './cluster.js';
import { cpuSeconds, sum } from './stats.js';
import type { CollectResult, OpenResult, PublishResult } from '../worker.js';

export interface Sizes {
  /** Load-generator processes. */
  workers: number;
  payloadBytes: number;
  fanoutReceivers: number;
  fanoutMessages: number;
  /** Messages published before the measured fan-out burst, the same way (0: measure from cold). */
  fanoutWarmup: number;
  latencyReceivers: number;
  /** The fixed rates of scenario 2, one row each: inside every system's capacity, and at 1,000 msg/s. */
  latencyRates: number[];
  latencySeconds: number;
  /** Seconds at the scenario's rate before the measured ones, the same way (0: measure from cold). */
  latencyWarmupSeconds: number;
  memoryConnections: number[];
  signalPairs: number;
  signalRounds: number;
  /** Round trips per pair before the measured ones (0: measure from cold). */
  signalWarmupRounds: number;
  sdpBytes: number;
  coldEvents: number;
  /** Events published and consumed before the measured ones, the same way (0: measure from cold). */
  coldWarmup: number;
  /** Receivers of the Pusher-endpoint fan-out (scenario 7), each protocol in turn. */
  pusherReceivers: number;
  /** Messages of its measured burst (and of its warm-up, unless `fanoutWarmup` is 0). */
  pusherMessages: number;
  /** Connections opened (connect + join / subscribe) per protocol for its connect rate. */
  pusherConnects: number;
}

export const FULL: Sizes = {
  workers: 4,
  payloadBytes: 256,
  fanoutReceivers: 300,
  fanoutMessages: 2000,
  fanoutWarmup: 2000,
  latencyReceivers: 100,
  latencyRates: [300, 1000],
  latencySeconds: 10,
  latencyWarmupSeconds: 5,
  memoryConnections: [5000, 20000],
  signalPairs: 30,
  signalRounds: 100,
  signalWarmupRounds: 100,
  sdpBytes: 1500,
  coldEvents: 20000,
  coldWarmup: 5000,
  pusherReceivers: 300,
  pusherMessages: 2000,
  pusherConnects: 2000,
};

export const QUICK: Sizes = {
  workers: 3,
  payloadBytes: 256,
  fanoutReceivers: 150,
  fanoutMessages: 500,
  fanoutWarmup: 500,
  latencyReceivers: 100,
  // A tenth of the full rates: the 2-core box tops out near 17k deliveries/s (fan-out), clients included.
  latencyRates: [30, 100],
  latencySeconds: 5,
  latencyWarmupSeconds: 2,
  memoryConnections: [2000, 5000],
  signalPairs: 20,
  signalRounds: 30,
  signalWarmupRounds: 30,
  sdpBytes: 1500,
  coldEvents: 5000,
  coldWarmup: 1000,
  pusherReceivers: 100,
  // 100,000 deliveries and 1,000 connects: enough CPU ticks (1/100 s) per phase to read a per-delivery figure.
  pusherMessages: 1000,
  pusherConnects: 1000,
};

export type Progress = (phase: string) => void;

export interface Figure {
  value: number;
  unit: string;
  better: 'higher' | 'lower';
}
export type Figures = Record<string, Figure>;

/** Where the Redis server's CPU comes from, to report it beside the servers' (it is shared and noisy). */
let redisPid: number | undefined;
export function setRedisPid(pid: number | undefined): void {
  redisPid = pid;
}
export function redisCpu(): number {
  return redisPid === undefined ? Number.NaN : cpuSeconds(redisPid);
}

export interface ConnSpec {
  url: string;
  user: string;
}

/** Round-robin `specs` over `n` workers; spec i goes to worker i % n, at local index ⌊i / n⌋. */
export function distribute(specs: readonly ConnSpec[], n: number): ConnSpec[][] {
  const out: ConnSpec[][] = Array.from({ length: n }, () => []);
  specs.forEach((spec, i) => out[i % n]?.push(spec));
  return out;
}

export async function openAll(workers: readonly Worker[], system: ConnKind, perWorker: readonly ConnSpec[][], concurrency = 64): Promise<OpenResult[]> {
  const results = await Promise.all(
    workers.map((worker, i) => worker.run<OpenResult>({ cmd: 'open', system, conns: perWorker[i] ?? [], concurrency, timeoutMs: 60_000 }, 300_000)),
  );
  const failed = sum(results.map((result) => result.failed));
  if (failed > 0) throw new Error(`${failed} connections failed to open: ${results.find((result) => result.firstError)?.firstError}`);
  return results;
}

export async function withCluster<T>(
  system: System,
  size: number,
  progress: Progress,
  body: (cluster: Cluster, workers: Worker[]) => Promise<T>,
  options: ClusterOptions = {},
): Promise<T> {
  progress('starting servers');
  const cluster = await startCluster(system, options);
  const workers = startWorkers(size);
  try {
    return await body(cluster, workers);
  } finally {
    progress('stopping');
    await Promise.allSettled(workers.map((worker) => worker.run({ cmd: 'close' }, 30_000)));
    await stopWorkers(workers);
    await cluster.stop();
  }
}

/** Error frames the connections received (must be 0 for a clean run); warns with one example. */
export async function errorsSeen(workers: readonly Worker[], progress: Progress): Promise<number> {
  const results = await Promise.all(workers.map((worker) => worker.run<{ count: number; last?: string }>({ cmd: 'errors' })));
  const count = sum(results.map((result) => result.count));
  if (count > 0) progress(`warning: ${count} error frames, e.g. ${results.find((result) => result.last)?.last}`);
  return count;
}

/** The user id of connection `i` of a scenario's group `tag`. */
export const user = (tag: string, i: number) => `${tag}${i}`;

/**
 * Event-loop delay and GC over a measured phase, for a system that exports
 * them (RuntimeReading): `start()` before the phase's first CPU reading (it
 * restarts the servers' delay histograms), `figures()` after its last.
 */
export async function runtimeWatch(cluster: Cluster): Promise<{ figures(): Promise<Figures> }> {
  // A failed read only leaves these two figures out: the run's own figures stand.
  const read = () => cluster.runtime().catch(() => undefined);
  const before = await read();
  return {
    async figures(): Promise<Figures> {
      const after = await read();
      if (!before || !after) return {};
      const gcMs = sum(after.map((reading, i) => reading.gcMs - (before[i]?.gcMs ?? 0)));
      return {
        'event-loop delay p99, worst server': { value: Math.max(...after.map((reading) => reading.loopDelayP99Ms)), unit: 'ms', better: 'lower' },
        'GC pauses, all servers': { value: gcMs, unit: 'ms', better: 'lower' },
      };
    },
  };
}

/**
 * One fan-out burst: every worker armed to count `count` messages tagged
 * `tag` (worker 0 from its connection 1 on, connection 0 being the
 * publisher's), `publish` sending them while every worker collects.
 */
export async function fanoutBurst(
  workers: readonly Worker[],
  tag: string,
  count: number,
  publish: () => Promise<PublishResult>,
): Promise<[PublishResult, ...CollectResult[]]> {
  await Promise.all(workers.map((worker, i) => worker.run({ cmd: 'arm', mode: 'count', tag, expected: count, ...(i === 0 ? { from: 1 } : {}) })));
  return Promise.all([publish(), ...workers.map((worker) => worker.run<CollectResult>({ cmd: 'collect', timeoutMs: 90_000 }))]);
}

/** A burst's publish from connection 0 of `publisher`: `count` messages at full speed, in windows of 100 (bench/worker.ts). */
export function burstPublish(publisher: Worker, room: string, cls: MessageClass, tag: string, count: number, size: number): Promise<PublishResult> {
  return publisher.run<PublishResult>({ cmd: 'publish', index: 0, room, cls, tag, count, ratePerSecond: 0, window: 100, size, timeoutMs: 60_000 });
}
