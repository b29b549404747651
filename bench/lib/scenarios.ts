/**
 * The comparison scenarios 1 to 5 (project issue 9). Each function runs ONE
 * run of one scenario against one system on a fresh 3-server cluster and
 * returns its figures; bench/run.ts repeats and takes medians. Both systems
 * get the same sizes, counts, payloads and client placement. What the
 * scenarios share is in scenario-kit.ts; scenario 7 in pusher-scenario.ts.
 */
import type { System, MessageClass } from './clients.js';
import type { Cluster, Worker } from './cluster.js';
import { mergeSorted, percentileSorted, sum } from './stats.js';
import type { CallResult, CollectResult, OpenResult, PublishResult } from '../worker.js';
import {
  burstPublish,
  distribute,
  errorsSeen,
  fanoutBurst,
  openAll,
  redisCpu,
  runtimeWatch,
  user,
  withCluster,
  type ConnSpec,
  type Figures,
  type Progress,
  type Sizes,
} from './scenario-kit.js';

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
      // One phase: `seconds` at the rate, every receiver armed first, done when every receiver has collected.
      const phase = async (tag: string, seconds: number, warmup: number): Promise<CollectResult[]> => {
        const count = rate * seconds;
        await Promise.all(workers.map((worker, i) => worker.run({ cmd: 'arm', mode: 'latency', tag, expected: count, ...(i === 0 ? { from: 1 } : {}) })));
        const timeoutMs = seconds * 1000 + 30_000;
        const [, ...collected] = await Promise.all([
          (workers[0] as Worker).run<PublishResult>(
            { cmd: 'publish', index: 0, room: 'latency', cls, tag, count, ratePerSecond: rate, window: 0, size: sizes.payloadBytes, timeoutMs, warmup },
            timeoutMs + 30_000,
          ),
          ...workers.map((worker) => worker.run<CollectResult>({ cmd: 'collect', timeoutMs }, timeoutMs + 30_000)),
        ]);
        return collected;
      };
      // Warm-up at the same rate, not measured, for both systems alike (the fan-out scenario says why).
      // Measured from cold, the first seconds of a 300 msg/s run also pay for the JIT still compiling the
      // publish and delivery paths, which a server that runs for days paid once. `--no-warmup` skips it.
      if (sizes.latencyWarmupSeconds > 0) {
        progress(`warm-up: ${rate} ${cls} msg/s for ${sizes.latencyWarmupSeconds} s`);
        await phase(`lat-${cls}-${rate}-warm`, sizes.latencyWarmupSeconds, rate * sizes.latencyWarmupSeconds);
      }
      const count = rate * sizes.latencySeconds;
      progress(`${rate} ${cls} msg/s for ${sizes.latencySeconds} s into ${sizes.latencyReceivers} receivers`);
      const runtime = await runtimeWatch(cluster);
      const cpu0 = cluster.cpuSeconds();
      // From cold, the first half second's latencies are not sampled (its CPU is still counted).
      const collected = await phase(`lat-${cls}-${rate}`, sizes.latencySeconds, sizes.latencyWarmupSeconds > 0 ? 0 : Math.floor(rate / 2));
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
