/**
 * The comparison scenarios (project issue 9). Each function runs ONE run of
 * one scenario against one system on a fresh 3-server cluster and returns
 * its figures; bench/run.ts repeats and takes medians. Both systems get the
 * same sizes, counts, payloads and client placement.
 */
import PusherServer from 'pusher';
import { BENCH_PUSHER_APP, PUSHER_API_EVENT, type ConnKind, type System, type MessageClass } from './clients.js';
import { startCluster, startWorkers, stopWorkers, type Cluster, type ClusterOptions, type Worker } from './cluster.js';
import { cpuSeconds, mergeSorted, nowMs, percentileSorted, sum } from './stats.js';
import type { CallResult, CollectResult, OpenResult, PublishResult } from '../worker.js';

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
  memoryConnections: number[];
  signalPairs: number;
  signalRounds: number;
  /** Round trips per pair before the measured ones (0: measure from cold). */
  signalWarmupRounds: number;
  sdpBytes: number;
  coldEvents: number;
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
  memoryConnections: [5000, 20000],
  signalPairs: 30,
  signalRounds: 100,
  signalWarmupRounds: 100,
  sdpBytes: 1500,
  coldEvents: 20000,
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
  memoryConnections: [2000, 5000],
  signalPairs: 20,
  signalRounds: 30,
  signalWarmupRounds: 30,
  sdpBytes: 1500,
  coldEvents: 5000,
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
function redisCpu(): number {
  return redisPid === undefined ? Number.NaN : cpuSeconds(redisPid);
}

interface ConnSpec {
  url: string;
  user: string;
}

/** Round-robin `specs` over `n` workers; spec i goes to worker i % n, at local index ⌊i / n⌋. */
function distribute(specs: readonly ConnSpec[], n: number): ConnSpec[][] {
  const out: ConnSpec[][] = Array.from({ length: n }, () => []);
  specs.forEach((spec, i) => out[i % n]?.push(spec));
  return out;
}

async function openAll(workers: readonly Worker[], system: ConnKind, perWorker: readonly ConnSpec[][], concurrency = 64): Promise<OpenResult[]> {
  const results = await Promise.all(
    workers.map((worker, i) => worker.run<OpenResult>({ cmd: 'open', system, conns: perWorker[i] ?? [], concurrency, timeoutMs: 60_000 }, 300_000)),
  );
  const failed = sum(results.map((result) => result.failed));
  if (failed > 0) throw new Error(`${failed} connections failed to open: ${results.find((result) => result.firstError)?.firstError}`);
  return results;
}

async function withCluster<T>(
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
async function errorsSeen(workers: readonly Worker[], progress: Progress): Promise<number> {
  const results = await Promise.all(workers.map((worker) => worker.run<{ count: number; last?: string }>({ cmd: 'errors' })));
  const count = sum(results.map((result) => result.count));
  if (count > 0) progress(`warning: ${count} error frames, e.g. ${results.find((result) => result.last)?.last}`);
  return count;
}

const user = (tag: string, i: number) => `${tag}${i}`;

/**
 * Event-loop delay and GC over a measured phase, for a system that exports
 * them (RuntimeReading): `start()` before the phase's first CPU reading (it
 * restarts the servers' delay histograms), `figures()` after its last.
 */
async function runtimeWatch(cluster: Cluster): Promise<{ figures(): Promise<Figures> }> {
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
async function fanoutBurst(
  workers: readonly Worker[],
  tag: string,
  count: number,
  publish: () => Promise<PublishResult>,
): Promise<[PublishResult, ...CollectResult[]]> {
  await Promise.all(workers.map((worker, i) => worker.run({ cmd: 'arm', mode: 'count', tag, expected: count, ...(i === 0 ? { from: 1 } : {}) })));
  return Promise.all([publish(), ...workers.map((worker) => worker.run<CollectResult>({ cmd: 'collect', timeoutMs: 90_000 }))]);
}

/** A burst's publish from connection 0 of `publisher`: `count` messages at full speed, in windows of 100 (bench/worker.ts). */
function burstPublish(publisher: Worker, room: string, cls: MessageClass, tag: string, count: number, size: number): Promise<PublishResult> {
  return publisher.run<PublishResult>({ cmd: 'publish', index: 0, room, cls, tag, count, ratePerSecond: 0, window: 100, size, timeoutMs: 60_000 });
}

/** 1. One room, receivers spread over the 3 nodes, one publisher at full speed (bounded count). */
export function fanout(cls: MessageClass) {
  return (system: System, sizes: Sizes, progress: Progress): Promise<Figures> =>
    withCluster(system, sizes.workers, progress, async (cluster, workers) => {
      const urls = cluster.servers.map((server) => server.url);
      const specs: ConnSpec[] = Array.from({ length: sizes.fanoutReceivers + 1 }, (_, i) => ({ url: urls[i % urls.length] as string, user: user('f', i) }));
      progress(`opening ${specs.length} connections`);
      await openAll(workers, system, distribute(specs, workers.length));
      progress('joining the room');
      await Promise.all(workers.map((worker) => worker.run({ cmd: 'join', room: 'fanout', concurrency: 32 }, 120_000)));
      const publisher = workers[0] as Worker;
      // Connection 0 of worker 0 is the publisher (spec 0), not a receiver.
      const burst = (tag: string, count: number) =>
        fanoutBurst(workers, tag, count, () => burstPublish(publisher, 'fanout', cls, tag, count, sizes.payloadBytes));
      // Warm-up, not measured, for both systems alike: until now only connects and joins ran, so
      // the publish and delivery paths are still cold code. Measured from cold, the burst also pays
      // for the JIT compiling them (on threads of their own: up to half of a node's CPU in the
      // burst). A server runs for days; the figure is meant to be its steady state.
      // `--no-warmup` measures from cold instead.
      if (sizes.fanoutWarmup > 0) {
        progress(`warm-up: ${sizes.fanoutWarmup} ${cls} messages`);
        await burst(`fan-${cls}-warm`, sizes.fanoutWarmup);
      }
      progress(`publishing ${sizes.fanoutMessages} ${cls} messages to ${sizes.fanoutReceivers} receivers`);
      const runtime = await runtimeWatch(cluster);
      const cpu0 = cluster.cpuSeconds();
      const redis0 = redisCpu();
      const [published, ...collected] = await burst(`fan-${cls}`, sizes.fanoutMessages);
      const cpu = cluster.cpuSeconds() - cpu0;
      const redis = redisCpu() - redis0;
      const loop = await runtime.figures();
      const delivered = sum(collected.map((result) => result.received));
      const expected = sizes.fanoutMessages * sizes.fanoutReceivers;
      const lastMs = Math.max(...collected.map((result) => result.lastMs));
      const seconds = (lastMs - published.startMs) / 1000;
      await errorsSeen(workers, progress);
      return {
        'deliveries/s': { value: delivered / seconds, unit: 'msg/s', better: 'higher' },
        delivered: { value: (100 * delivered) / expected, unit: '%', better: 'higher' },
        'server CPU / delivery': { value: (cpu / delivered) * 1e6, unit: 'µs', better: 'lower' },
        'redis CPU / delivery': { value: (redis / delivered) * 1e6, unit: 'µs', better: 'lower' },
        ...loop,
      };
    });
}

/** 2. Latency at a fixed rate; publisher on node 1, receivers on nodes 2 and 3. */
export function latency(cls: MessageClass, rate: number) {
  return (system: System, sizes: Sizes, progress: Progress): Promise<Figures> =>
    withCluster(system, sizes.workers, progress, async (cluster, workers) => {
      const urls = cluster.servers.map((server) => server.url);
      const specs: ConnSpec[] = Array.from({ length: sizes.latencyReceivers + 1 }, (_, i) => ({
        // A one-process system (limit-1) has every connection on its one node.
        url: (i === 0 || urls.length === 1 ? urls[0] : urls[1 + (i % (urls.length - 1))]) as string,
        user: user('l', i),
      }));
      progress(`opening ${specs.length} connections`);
      await openAll(workers, system, distribute(specs, workers.length));
      await Promise.all(workers.map((worker) => worker.run({ cmd: 'join', room: 'latency', concurrency: 32 }, 120_000)));
      const count = rate * sizes.latencySeconds;
      const tag = `lat-${cls}-${rate}`;
      await Promise.all(workers.map((worker, i) => worker.run({ cmd: 'arm', mode: 'latency', tag, expected: count, ...(i === 0 ? { from: 1 } : {}) })));
      progress(`${rate} ${cls} msg/s for ${sizes.latencySeconds} s into ${sizes.latencyReceivers} receivers`);
      const runtime = await runtimeWatch(cluster);
      const cpu0 = cluster.cpuSeconds();
      const [, ...collected] = await Promise.all([
        (workers[0] as Worker).run<PublishResult>(
          {
            cmd: 'publish',
            index: 0,
            room: 'latency',
            cls,
            tag,
            count,
            ratePerSecond: rate,
            window: 0,
            size: sizes.payloadBytes,
            timeoutMs: sizes.latencySeconds * 1000 + 30_000,
            warmup: Math.floor(rate / 2),
          },
          sizes.latencySeconds * 1000 + 60_000,
        ),
        ...workers.map((worker) =>
          worker.run<CollectResult>({ cmd: 'collect', timeoutMs: sizes.latencySeconds * 1000 + 30_000 }, sizes.latencySeconds * 1000 + 60_000),
        ),
      ]);
      const cpu = cluster.cpuSeconds() - cpu0;
      const loop = await runtime.figures();
      const delivered = sum(collected.map((result) => result.received));
      const samples = mergeSorted(collected.map((result) => result.samples));
      return {
        p50: { value: percentileSorted(samples, 50), unit: 'ms', better: 'lower' },
        p99: { value: percentileSorted(samples, 99), unit: 'ms', better: 'lower' },
        'p99.9': { value: percentileSorted(samples, 99.9), unit: 'ms', better: 'lower' },
        delivered: { value: (100 * delivered) / (count * sizes.latencyReceivers), unit: '%', better: 'higher' },
        'server CPU / delivery': { value: (cpu / delivered) * 1e6, unit: 'µs', better: 'lower' },
        ...loop,
      };
    });
}

/**
 * 3 + 4. Idle authenticated connections: RSS and V8 heap per connection, and
 * the connect + welcome rate while opening them.
 *
 * The heap figure comes from a second fresh cluster, started with the
 * inspector, that goes through the same steps: reading the heap means a full
 * GC, and a full GC anywhere between the two RSS readings releases pages and
 * moves the RSS figure (seen: nerve's RSS per connection at 5,000 fell from
 * 16 KiB to 1.6 KiB when the "before" heap was read on the same cluster).
 * Reading it on a second batch after the first closed would miss memory:
 * about 600 B per connection stays after the first batch closes, on both
 * systems, and the second batch reuses it (capacity grown for n connections,
 * which the servers do pay for holding n).
 */
export function connections(n: number) {
  return async (system: System, sizes: Sizes, progress: Progress): Promise<Figures> => {
    // At most 5,000 connections per load worker (the machine allows 20,000 open files per process).
    const workerCount = Math.max(sizes.workers, Math.ceil(n / 5000));
    const rss = await withCluster(system, workerCount, progress, async (cluster, workers) => {
      let rss0 = 0;
      let cpu0 = 0;
      let cpu = 0;
      let rss1 = 0;
      const opened = await holdIdle(cluster, workers, system, n, progress, {
        before: () => {
          rss0 = cluster.rssBytes();
          cpu0 = cluster.cpuSeconds();
        },
        opened: () => {
          cpu = cluster.cpuSeconds() - cpu0;
        },
        after: () => {
          rss1 = cluster.rssBytes();
        },
      });
      const seconds = (Math.max(...opened.map((result) => result.endMs)) - Math.min(...opened.map((result) => result.startMs))) / 1000;
      return { perConn: (rss1 - rss0) / n, connectsPerSecond: n / seconds, cpuPerConnect: cpu / n };
    });
    const heapProgress: Progress = (phase) => progress(`heap: ${phase}`);
    const heap = await withCluster(
      system,
      workerCount,
      heapProgress,
      async (cluster, workers) => {
        let heap0 = 0;
        let heap1 = 0;
        await holdIdle(cluster, workers, system, n, heapProgress, {
          before: async () => {
            heap0 = await cluster.heapUsed();
          },
          after: async () => {
            heap1 = await cluster.heapUsed();
          },
        });
        return (heap1 - heap0) / n;
      },
      { inspect: true },
    );
    return {
      [`RSS / idle conn @${n}`]: { value: rss.perConn / 1024, unit: 'KiB', better: 'lower' },
      [`heap / idle conn @${n}`]: { value: heap, unit: 'B', better: 'lower' },
      [`connects/s @${n}`]: { value: rss.connectsPerSecond, unit: 'conn/s', better: 'higher' },
      [`server CPU / connect @${n}`]: { value: rss.cpuPerConnect * 1e6, unit: 'µs', better: 'lower' },
    };
  };
}

/**
 * Warm up, take the "before" readings, open `n` idle connections, hold them
 * 3 s, take the "after" readings; both clusters of scenario 3 + 4 go through
 * exactly these steps.
 */
async function holdIdle(
  cluster: Cluster,
  workers: readonly Worker[],
  system: System,
  n: number,
  progress: Progress,
  read: { before: () => Promise<void> | void; opened?: () => void; after: () => Promise<void> | void },
): Promise<OpenResult[]> {
  const urls = cluster.servers.map((server) => server.url);
  // Warm the code paths (JIT, lazily built structures) so they do not count as per-connection memory.
  const warm = Array.from({ length: 60 }, (_, i) => ({ url: urls[i % urls.length] as string, user: user('w', i) }));
  await openAll(workers, system, distribute(warm, workers.length));
  await Promise.all(workers.map((worker) => worker.run({ cmd: 'close' })));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await read.before();
  progress(`opening ${n} connections`);
  const specs = Array.from({ length: n }, (_, i) => ({ url: urls[i % urls.length] as string, user: user('m', i) }));
  const opened = await openAll(workers, system, distribute(specs, workers.length));
  read.opened?.();
  progress(`holding ${n} idle connections`);
  await new Promise((resolve) => setTimeout(resolve, 3000));
  await read.after();
  return opened;
}

/** 5. Offer → answer round trips between users on different nodes. */
export function signaling(system: System, sizes: Sizes, progress: Progress): Promise<Figures> {
  return withCluster(system, sizes.workers, progress, async (cluster, workers) => {
    const urls = cluster.servers.map((server) => server.url);
    const w = workers.length;
    // Pair p: caller on node p % 3 in worker p % w; callee on node (p + 1) % 3 in worker (p + 1) % w.
    const callers: ConnSpec[][] = Array.from({ length: w }, () => []);
    const callees: ConnSpec[][] = Array.from({ length: w }, () => []);
    const calls: Array<Array<{ index: number; to: string }>> = Array.from({ length: w }, () => []);
    for (let p = 0; p < sizes.signalPairs; p++) {
      const callee = { url: urls[(p + 1) % urls.length] as string, user: user('callee', p) };
      const mine = callers[p % w] as ConnSpec[];
      (calls[p % w] as Array<{ index: number; to: string }>).push({ index: mine.length, to: callee.user });
      mine.push({ url: urls[p % urls.length] as string, user: user('caller', p) });
      (callees[(p + 1) % w] as ConnSpec[]).push(callee);
    }
    progress(`opening ${2 * sizes.signalPairs} connections`);
    await openAll(
      workers,
      system,
      workers.map((_, i) => [...(callers[i] ?? []), ...(callees[i] ?? [])]),
    );
    await Promise.all(workers.map((worker, i) => worker.run({ cmd: 'answer', from: callers[i]?.length ?? 0 })));
    const callAll = (rounds: number) =>
      Promise.all(
        workers.map((worker, i) => worker.run<CallResult>({ cmd: 'call', pairs: calls[i] ?? [], rounds, size: sizes.sdpBytes, timeoutMs: 5000 }, 300_000)),
      );
    // Warm-up, not measured, for the reason the fan-out scenario gives.
    if (sizes.signalWarmupRounds > 0) {
      progress(`warm-up: ${sizes.signalPairs} pairs × ${sizes.signalWarmupRounds} round trips`);
      await callAll(sizes.signalWarmupRounds);
    }
    progress(`${sizes.signalPairs} pairs × ${sizes.signalRounds} offer → answer round trips`);
    const runtime = await runtimeWatch(cluster);
    const cpu0 = cluster.cpuSeconds();
    const results = await callAll(sizes.signalRounds);
    const cpu = cluster.cpuSeconds() - cpu0;
    const loop = await runtime.figures();
    const samples = mergeSorted(results.map((result) => result.samples));
    const timeouts = sum(results.map((result) => result.timeouts));
    await errorsSeen(workers, progress);
    return {
      'RTT p50': { value: percentileSorted(samples, 50), unit: 'ms', better: 'lower' },
      'RTT p99': { value: percentileSorted(samples, 99), unit: 'ms', better: 'lower' },
      'lost round trips': { value: timeouts, unit: 'count', better: 'lower' },
      'server CPU / round trip': { value: (cpu / Math.max(1, samples.length)) * 1e6, unit: 'µs', better: 'lower' },
      ...loop,
    };
  });
}

/** Which protocol goes first in scenario 7; alternates run by run so drifting background load hits both. */
let pusherRuns = 0;

/**
 * 7. nerve's Pusher endpoint (docs/pusher.md) against its native protocol,
 * on ONE 3-node cluster with a Pusher app, in the same run (project issue 19):
 *
 * - fan-out: one publisher, N receivers in one room spread over the 3 nodes;
 *   pusher-js receivers subscribed to `private-<room>` with a pusher-js
 *   publisher sending client events (nerve relays them as ephemeral room
 *   messages), against native receivers with a native ephemeral publisher.
 *   Same warm-up, window and ping flow control as scenario 1. Then the
 *   pusher-js receivers once more, with the HTTP API as the publisher.
 * - connects: n connections, each then in a room of its own — pusher-js
 *   `connection_established` + private-channel `subscribe`, against native
 *   `connect` + `join`. A room per connection because a shared native room
 *   would push `member_joined` to every member (n²/2 deliveries), which a
 *   private channel does not: the figure is the connect, not presence.
 *
 * The server CPU is the 3 nodes' user + system time over each measured phase;
 * the receivers and publishers are pusher-js or raw `ws` in the load workers.
 */
export function pusherEndpoint(_system: System, sizes: Sizes, progress: Progress): Promise<Figures> {
  const order: ConnKind[] = pusherRuns++ % 2 === 0 ? ['nerve', 'pusher'] : ['pusher', 'nerve'];
  return withCluster(
    'nerve',
    sizes.workers,
    progress,
    async (cluster, workers) => {
      const urlsOf = (kind: ConnKind) => cluster.servers.map((server) => (kind === 'pusher' ? `ws://127.0.0.1:${server.port}` : server.url));
      const labelOf = (kind: ConnKind) => (kind === 'pusher' ? 'pusher-js' : 'native');
      const closeAll = async () => {
        await Promise.all(workers.map((worker) => worker.run({ cmd: 'close' }, 30_000)));
        // Let the nodes finish tearing the connections down before the next phase's CPU reading.
        await new Promise((resolve) => setTimeout(resolve, 1000));
      };

      /**
       * The HTTP API as the publisher (`pusher` from npm, as an app's backend would use it): batches of 10
       * events (`batch_events`, Pusher's largest), 4 requests in flight, all to node 1.
       */
      const api = new PusherServer({
        appId: BENCH_PUSHER_APP.id,
        key: BENCH_PUSHER_APP.key,
        secret: BENCH_PUSHER_APP.secret,
        host: '127.0.0.1',
        port: String(cluster.servers[0]?.port),
        useTLS: false,
      });
      const trigger = async (channel: string, tag: string, count: number): Promise<PublishResult> => {
        const pad = 'x'.repeat(sizes.payloadBytes);
        const deadline = nowMs() + 60_000;
        const startMs = nowMs();
        let sent = 0;
        const lane = async () => {
          while (sent < count && nowMs() < deadline) {
            const batch = Array.from({ length: Math.min(10, count - sent) }, () => ({
              channel,
              name: PUSHER_API_EVENT,
              data: { tag, seq: sent++, t: nowMs(), pad },
            }));
            await api.triggerBatch(batch);
          }
        };
        await Promise.all(Array.from({ length: 4 }, lane));
        return { sent, startMs, endMs: nowMs() };
      };

      const fanoutOf = async (kind: ConnKind, viaApi = false): Promise<Figures> => {
        const label = viaApi ? 'pusher-js via HTTP API' : labelOf(kind);
        const urls = urlsOf(kind);
        const room = viaApi ? 'fan-api' : `fan-${kind}`;
        const specs: ConnSpec[] = Array.from({ length: sizes.pusherReceivers + 1 }, (_, i) => ({
          url: urls[i % urls.length] as string,
          user: user(`p${kind}`, i),
        }));
        progress(`${label}: opening ${specs.length} connections`);
        await openAll(workers, kind, distribute(specs, workers.length));
        await Promise.all(workers.map((worker) => worker.run({ cmd: 'join', room, concurrency: 32 }, 120_000)));
        const publisher = workers[0] as Worker;
        // Via the API, connection 0 only listens (and, armed from 1, is not counted): the same N receivers.
        const burst = (tag: string, count: number) =>
          fanoutBurst(workers, tag, count, () =>
            viaApi ? trigger(`private-${room}`, tag, count) : burstPublish(publisher, room, 'ephemeral', tag, count, sizes.payloadBytes),
          );
        if (sizes.fanoutWarmup > 0) {
          progress(`${label}: warm-up, ${sizes.pusherMessages} messages`);
          await burst(`pfan-${room}-warm`, sizes.pusherMessages);
        }
        progress(`${label}: ${sizes.pusherMessages} messages to ${sizes.pusherReceivers} receivers`);
        const cpu0 = cluster.cpuSeconds();
        const [published, ...collected] = await burst(`pfan-${room}`, sizes.pusherMessages);
        const cpu = cluster.cpuSeconds() - cpu0;
        const delivered = sum(collected.map((result) => result.received));
        const seconds = (Math.max(...collected.map((result) => result.lastMs)) - published.startMs) / 1000;
        await errorsSeen(workers, progress);
        await closeAll();
        return {
          [`fan-out ${label}: deliveries/s`]: { value: delivered / seconds, unit: 'msg/s', better: 'higher' },
          [`fan-out ${label}: delivered`]: { value: (100 * delivered) / (sizes.pusherMessages * sizes.pusherReceivers), unit: '%', better: 'higher' },
          [`fan-out ${label}: server CPU / delivery`]: { value: (cpu / Math.max(1, delivered)) * 1e6, unit: 'µs', better: 'lower' },
        };
      };

      const connectsOf = async (kind: ConnKind): Promise<Figures> => {
        const label = labelOf(kind);
        const urls = urlsOf(kind);
        const n = sizes.pusherConnects;
        const specs: ConnSpec[] = Array.from({ length: n }, (_, i) => ({ url: urls[i % urls.length] as string, user: user(`c${kind}`, i) }));
        progress(`${label}: ${n} connects + ${kind === 'pusher' ? 'subscribes' : 'joins'}`);
        const cpu0 = cluster.cpuSeconds();
        const t0 = nowMs();
        await openAll(workers, kind, distribute(specs, workers.length), 32);
        // Worker i's rooms are `conn-<kind>-<i>-<index>`: one room per connection across the run.
        await Promise.all(workers.map((worker, i) => worker.run({ cmd: 'join', room: `conn-${kind}-${i}`, roomPerConn: true, concurrency: 32 }, 120_000)));
        const seconds = (nowMs() - t0) / 1000;
        const cpu = cluster.cpuSeconds() - cpu0;
        await errorsSeen(workers, progress);
        await closeAll();
        return {
          [`connects ${label}: connects/s`]: { value: n / seconds, unit: 'conn/s', better: 'higher' },
          [`connects ${label}: server CPU / connect`]: { value: (cpu / n) * 1e6, unit: 'µs', better: 'lower' },
        };
      };

      const fanouts = new Map<ConnKind, Figures>();
      const connects = new Map<ConnKind, Figures>();
      for (const kind of order) fanouts.set(kind, await fanoutOf(kind));
      const viaApi = await fanoutOf('pusher', true);
      for (const kind of order) connects.set(kind, await connectsOf(kind));
      // Always native first in the table, whichever ran first.
      return { ...fanouts.get('nerve'), ...fanouts.get('pusher'), ...viaApi, ...connects.get('nerve'), ...connects.get('pusher') };
    },
    { nerveArgs: ['--pusher-apps', JSON.stringify([BENCH_PUSHER_APP])] },
  );
}
